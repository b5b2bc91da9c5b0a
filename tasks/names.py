"""The built-in tasks' names, light to import: the command line's parser lists them (`--task`) without loading
torch. They are tasks/registry.py's names in its order (tests/tasks/test_registry.py checks it)."""

TASK_NAMES: tuple[str, ...] = ("denoise", "segment", "matting", "depth")
