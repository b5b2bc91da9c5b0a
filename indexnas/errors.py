"""The one exception type for mistakes a user can fix: the CLI prints it without a traceback."""


class UserError(Exception):
    """A bad input: the message says what is wrong and what to do about it."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


def describe(error: BaseException) -> str:
    """One readable message: a UserError as it reads, anything else prefixed with its type."""
    return str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
