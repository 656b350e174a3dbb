# The two commands of the README's quick start, and what CI runs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup main test lint bench clean-runs

$(BIN)/metactrl: pyproject.toml
	$(PY) -m venv $(VENV)
	# torch 2.14.1 / torchvision 0.29.1 are the newest this project's build machines allow (see pyproject).
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/pip install -q torch torchvision
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/metactrl

setup: $(BIN)/metactrl

main: setup   ## the project's main job on the embedded default data
	$(BIN)/metactrl train

test: setup   ## the test suite (what CI runs); shared datasets are found at ../shared/data
	METACTRL_TEST_DATA=$${METACTRL_TEST_DATA:-$(CURDIR)/../shared/data} $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check metactrl tests benchmarks

bench: setup
	$(BIN)/python benchmarks/engine_bench.py
