# The README's two commands are `make demo` and `make test`; everything else
# here supports them. The virtual environment lives in .venv and is reused.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench clean venv

venv: $(RUN_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(RUN_STAMP)
	$(BIN)/python scripts/demo.py

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check popbatch tests benchmarks scripts
	$(BIN)/ruff format --check popbatch tests benchmarks scripts
	$(BIN)/mypy

# Under 10 minutes on a 2-core machine; BENCH_ARGS=--full uses issue 8's exact
# sizes (about half an hour). Writes BENCHMARKS.md.
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo-output .pytest_cache .mypy_cache .ruff_cache
