# One command each on a fresh machine: the first one creates .venv and installs the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export CAREERPULSE_HOME ?= $(CURDIR)/.careerpulse
export DAGSTER_HOME ?= $(CAREERPULSE_HOME)/dagster

.PHONY: run test ui bench clean

JOB ?= careerpulse_all
run: $(INSTALLED) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m careerpulse_assets.run $(JOB)

test: $(INSTALLED)
	$(BIN)/python -m pytest

ui: $(INSTALLED) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The whole graph at 2k, 20k and 100k postings (about 20 minutes); rewrites its part of
# BENCHMARKS.md. Other sizes: make bench BENCH_SIZES="2000 50000".
SHARED_MUSE ?= ../shared/data/muse
BENCH_SIZES ?=
bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.scale $(SHARED_MUSE) $(BENCH_SIZES)

$(INSTALLED): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp dagster-instance.yaml $@

clean:
	rm -rf $(VENV) .careerpulse
