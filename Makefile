# Two commands: `make demo` and `make test`. Each creates .venv when it is
# missing and installs the project into it (CPU torch; see pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The optional Lava simulator (lava-nc/lava-dl) lives in its own environment (docs/lava.md).
LAVA_VENV := .lava-venv
LAVA_STAMP := $(LAVA_VENV)/.installed-stamp

.PHONY: demo test lint bench clean lava-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

$(LAVA_STAMP): tools/setup_lava_env.sh
	PYTHON=$(PYTHON) bash tools/setup_lava_env.sh $(LAVA_VENV)
	touch $(LAVA_STAMP)

lava-env: $(LAVA_STAMP)

demo: $(STAMP)
	$(BIN)/spklip-energy demo --out demo-out

# One pytest worker per core (pytest-xdist), each test file on one worker (module fixtures are built once).
test: $(STAMP) $(LAVA_STAMP)
	SPKLIP_LAVA_PYTHON=$(CURDIR)/$(LAVA_VENV)/bin/python $(BIN)/python -m pytest -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_read_dat.py
	$(BIN)/python benchmarks/bench_make_digits.py
	$(BIN)/python benchmarks/bench_profile.py
	$(BIN)/python benchmarks/bench_train_speed.py
	$(BIN)/python benchmarks/bench_front_end.py

clean:
	rm -rf $(VENV) $(LAVA_VENV) demo-out .pytest_cache .hypothesis
