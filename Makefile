# Everything installs from nothing: `make test` and `make run` create .venv when needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

RECSYS_WORKSPACE ?= $(CURDIR)/workspace
# ../shared/datasets is used when present (no internet here); elsewhere ingestion downloads MovieLens.
RECSYS_DATA_DIR ?= $(if $(wildcard $(CURDIR)/../shared/datasets),$(abspath $(CURDIR)/../shared/datasets),)
export RECSYS_WORKSPACE RECSYS_DATA_DIR

# No telemetry: the machines have no internet (see README, "Environment").
export PREFECT_HOME ?= $(RECSYS_WORKSPACE)/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export DASK_LOGGING__DISTRIBUTED := warning

.PHONY: install run test ui clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, exact version: the local CPU wheel (any other spec pulls CUDA packages).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/recsys retrain

test: install
	mkdir -p $(PREFECT_HOME)  # Prefect warns, and does not create parents, when it is missing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .  # one formatting, no `fmt: skip`: run `ruff format .` before committing
	$(BIN)/mypy  # the modules listed under [tool.mypy] in pyproject.toml
	$(BIN)/python -m pytest

ui: install
	$(BIN)/recsys ui

clean:
	rm -rf $(RECSYS_WORKSPACE)
