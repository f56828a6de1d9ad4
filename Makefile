# One command each on a fresh machine: the first one creates .venv and installs the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Settings (CAREERPULSE_HOME, DAGSTER_HOME, HOST, DAGSTER_PORT, MLFLOW_PORT, ...) come from the
# environment, `make ... NAME=value` and `.env`, read by the commands themselves as Dagster reads
# it (careerpulse_assets/ops/settings.py), so `make`, `dagster dev` and `dg` agree; their defaults
# live there too.

.PHONY: run test ui serve review bench clean

# Each writes $(DAGSTER_HOME)/dagster.yaml first (SQLite, or PostgreSQL with DAGSTER_POSTGRES_URL).
# CONFIG=path.yaml: the run config (op config, the checks' bars) for this run.
JOB ?= careerpulse_all
CONFIG ?=
run: $(INSTALLED)
	$(BIN)/python -m careerpulse_assets.ops.run $(JOB) $(if $(CONFIG),--config "$(CONFIG)")

# Three workers, one test file each at a time (files share fixtures and servers), the longest
# files first (careerpulse_assets_tests/conftest.py FILE_SECONDS) so that they finish together. On
# 2 cores a third worker uses what the process and server tests leave idle while they wait on
# their children (745 s against 904 s for two); a fourth gained nothing (439 s, as three) and a
# fifth lost (515 s).
# `.venv/bin/pytest -m "not slow" -n 2` is the quick loop (68 s; 121 s on one worker).
TEST_WORKERS ?= 3
test: $(INSTALLED)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# dagster dev (webserver, daemon, code server) on this terminal, and the MLflow UI beside it.
ui: $(INSTALLED)
	$(BIN)/python -m careerpulse_assets.ops.serve ui

# The long-running deployment: dagster-webserver, dagster-daemon and mlflow server as separate
# processes, logs in $(CAREERPULSE_HOME)/logs, all stopped by SIGTERM or Ctrl-C.
serve: $(INSTALLED)
	$(BIN)/python -m careerpulse_assets.ops.serve serve

# The first N postings of silver.review_queue as a label file in $(CAREERPULSE_LABELS_DIR) to fill in.
N ?= 50
review: $(INSTALLED)
	$(BIN)/python -m careerpulse_assets.review.handout $(N)

# The whole graph at 2k, 20k and 100k postings (about 20 minutes); rewrites its part of
# BENCHMARKS.md. Other sizes: make bench BENCH_SIZES="2000 400000" (the live API's size);
# another file for the tables: BENCH_REPORT=path.md (the tests run it at 150 postings of their own
# that way).
SHARED_MUSE ?= ../shared/data/muse
BENCH_SIZES ?= 2000 20000 100000
BENCH_REPORT ?= BENCHMARKS.md
bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.scale $(SHARED_MUSE) $(BENCH_SIZES) --write "$(BENCH_REPORT)"

$(INSTALLED): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .careerpulse
