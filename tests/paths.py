"""Where the tests' files are, for test modules in any folder under tests/ (conftest.py puts tests/ on sys.path)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ASSETS = TESTS / "assets"
REPO = TESTS.parent
