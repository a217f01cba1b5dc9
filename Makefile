# Set-up and entry points. `make test` is the command CI runs (see .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint bench

# Dependencies are installed once per pyproject.toml; the package itself is (re)linked each
# time so that a shared environment can serve several checkouts.
$(VENV)/.deps-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev,faiss]'
	touch $@

setup: $(VENV)/.deps-installed
	$(BIN)/pip install --quiet --no-deps -e .

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/radius.py
