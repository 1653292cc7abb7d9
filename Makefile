# trajgym — every target creates/uses the project venv in .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: install test test-all bench lint run compose-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv and install trajgym with its test dependencies

test: install  ## the default test suite (what CI runs)
	$(BIN)/pytest -q -m "not model and not browser" tests

bench: install  ## benchmarks (not tests): figures go to BENCHMARKS.md
	$(BIN)/python bench/bench_service.py

lint: install
	$(BIN)/ruff check envs services clients collector tests bench

compose-check: install  ## validate docker/compose.yaml offline (no Docker engine needed)
	$(BIN)/python docker/check_compose.py

run: install  ## the main job on embedded defaults
	$(BIN)/trajgym quickstart

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
