"""Storage URLs: which storage a URL names (a journal file, or an RDB URL with its driver resolved), checked
without touching anything, and its passwords masked wherever a URL or a message would show them."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from indexnas.errors import UserError

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")
# Drivers SQLAlchemy can use for a bare postgresql:// URL, in its order of preference.
POSTGRES_DRIVERS = (("psycopg", "psycopg"), ("psycopg2", "psycopg2"))
URL_HELP = ("use a journal file (journal:///abs/path/study.log or a path ending in .log) "
            "or an RDB URL (postgresql://user:pass@host:5432/db, sqlite:///file.db)")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^\s@]*(?:@[^\s@]*)*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)[^&\s]*", re.IGNORECASE)
_SECRET_KEYS = ("password", "passwd", "pwd")


def _parsed(url: str):
    """The RDB URL parsed by SQLAlchemy (which accepts any character in a password, even a space), else None."""
    from sqlalchemy.engine import make_url

    if url.split("://", 1)[0].split("+", 1)[0].lower() not in RDB_SCHEMES:
        return None
    try:
        return make_url(url)
    except Exception:  # malformed: masked by pattern instead
        return None


def _secrets(url: str) -> list[str]:
    """The URL's password and password-like query values, raw and percent-encoded."""
    from urllib.parse import quote, quote_plus

    parsed = _parsed(url)
    if parsed is None:
        return []
    values = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in _SECRET_KEYS:
            values.extend([value] if isinstance(value, str) else value)
    return sorted({form for v in values for form in (v, quote(v, safe=""), quote_plus(v)) if form}, key=len, reverse=True)


def mask_url(url: str) -> str:
    """The storage URL with its password replaced by ***, rendered from SQLAlchemy's parse of it."""
    parsed = _parsed(url)
    if parsed is None:
        return mask_text(url)
    return mask_text(parsed.render_as_string(hide_password=True), url)  # the query's password= too


def mask_text(text: str, url: str | None = None) -> str:
    """A message with ``url``'s password (wherever it appears) and any URL-shaped password replaced by ***."""
    for secret in _secrets(url) if url else []:
        text = text.replace(secret, "***")
    return _QUERY_PASSWORD.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>:***@", text))


@dataclass(frozen=True)
class StorageLocation:
    """A checked storage URL: a journal file, or an SQLAlchemy URL with its driver resolved."""

    url: str  # as the user wrote it (print it through mask_url)
    journal: Path | None = None  # the embedded journal file
    rdb_url: str | None = None  # the SQLAlchemy URL for RDBStorage
    local_file: Path | None = None  # the journal or SQLite file; None for a database server


def locate_storage(url: str) -> StorageLocation:
    """Check a storage URL without touching anything; a malformed one is a UserError saying how to write it."""
    if not isinstance(url, str) or not url.strip():
        raise UserError("no storage URL given", URL_HELP)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "journal", "file"):
        rest = url.split("://", 1)[1] if scheme else url
        path = Path(rest).expanduser()
        if not rest or str(path) in (".", "/"):
            raise UserError(f"storage URL {mask_url(url)!r} names no file", "use e.g. journal:///path/to/study.log")
        if path.is_dir():
            raise UserError(f"storage path {path} is a directory", "name a file inside it, e.g. study.log")
        if path.exists() and not path.is_file():
            raise UserError(f"storage path {path} is not a regular file (a device, pipe or socket)",
                            "name a journal file, e.g. runs/studies.log")
        return StorageLocation(url, journal=path, local_file=path)
    if scheme.split("+", 1)[0] not in RDB_SCHEMES:
        raise UserError(f"storage URL {mask_url(url)!r} has an unknown scheme {scheme!r}", URL_HELP)
    return _locate_rdb(url)


def _locate_rdb(url: str) -> StorageLocation:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(re.sub(r"^postgres(?=[+:])", "postgresql", url, flags=re.IGNORECASE))
    except (ArgumentError, ValueError) as error:
        raise UserError(f"storage URL {mask_url(url)!r} is malformed: {mask_text(str(error), url)}",
                        "write it as scheme://user:password@host:port/database, e.g. "
                        "postgresql://optuna:secret@db.example.org:5432/studies") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise UserError(f"storage URL {mask_url(url)!r} is an in-memory database: the study would be lost "
                            "when the command ends", "name a file, e.g. sqlite:///studies.db, or use a journal .log file")
        return StorageLocation(url, rdb_url=parsed.render_as_string(hide_password=False),
                               local_file=Path(parsed.database).expanduser())
    if not parsed.database:
        raise UserError(f"storage URL {mask_url(url)!r} names no database", "add it after the host: .../DATABASE")
    if parsed.drivername == "postgresql":  # SQLAlchemy's default driver may not be the installed one
        installed = [name for name, module in POSTGRES_DRIVERS if importlib.util.find_spec(module)]
        if not installed:
            raise UserError("no PostgreSQL driver is installed", "pip install psycopg2-binary (or 'psycopg[binary]')")
        parsed = parsed.set(drivername=f"postgresql+{installed[0]}")
    return StorageLocation(url, rdb_url=parsed.render_as_string(hide_password=False))
