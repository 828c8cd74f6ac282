# Two commands: `make demo` and `make test`. Each creates .venv when it is
# missing and installs the project into it (CPU torch; see pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spklip-energy demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_read_dat.py
	$(BIN)/python benchmarks/bench_make_digits.py
	$(BIN)/python benchmarks/bench_profile.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
