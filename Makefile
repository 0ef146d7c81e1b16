# Two commands do all the set-up on a fresh machine with Python 3.11 and pip:
#   make figures   create .venv, install pinned packages, build every figure (default preset)
#   make test      the same set-up, then the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= $(shell nproc 2>/dev/null || echo 2)
PRESET ?=

.PHONY: figures test test-slow lint bench clean-results

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

figures: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) figures $(if $(PRESET),--config preset=$(PRESET))

test: $(BIN)/.installed
	$(BIN)/python -m pytest

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests workflow_scripts benchmarks
	$(BIN)/snakemake --lint

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/difflogic_speed.py
	$(BIN)/python benchmarks/difflogic_reference_speed.py
	$(BIN)/python benchmarks/patterning_speed.py
	$(BIN)/python benchmarks/attention_speed.py
	$(BIN)/python -m pip install --quiet --requirement benchmarks/requirements-cax.txt
	$(BIN)/python benchmarks/growing_speed.py
	$(BIN)/python benchmarks/advection_speed.py

clean-results:
	rm -rf results .snakemake
	git checkout -- results/README.md
