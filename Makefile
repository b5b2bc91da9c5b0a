# The two commands of the README. Each creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-all

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/indexnas demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q
