# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The stamp records that the environment matches pyproject.toml; it is rebuilt when that changes.
STAMP      := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-slow clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/drive-run experiment=quickstart

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n auto  # one test process per core (pytest-xdist)

test-slow: $(TEST_STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) outputs .pytest_cache
