# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA ?= $(CURDIR)/data

.PHONY: install browser demo test test-fast ui lint bench clean

$(STAMP): pyproject.toml setup.py $(wildcard fraud_assets/*/*.pyx)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create or update the virtual environment

demo: $(STAMP) ## run the platform end to end on embedded defaults
	FRAUD_DATA_DIR=$(DATA) DAGSTER_HOME=$(DATA)/dagster_home $(VENV)/bin/fraud demo

browser: ## Debian's Chromium for the browser tests (Playwright drives it; no browser download)
	@command -v chromium >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

test: $(STAMP) browser ## lint, then the whole test suite, as CI runs it (PostgreSQL, Redis, Chromium)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

test-fast: $(STAMP) ## unit and property tests only (no browser, Spark, outage, Dagster runs or slow groups)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest --fast -q

ui: $(STAMP) ## Dagster UI on the demo's instance, http://127.0.0.1:3000
	@$(PY) -m fraud_assets.dev.instance $(DATA)/dagster_home >/dev/null
	@echo "Drift reports on http://127.0.0.1:8765/ (fraud reports), Dagster UI on http://127.0.0.1:3000"
	FRAUD_DATA_DIR=$(DATA) $(VENV)/bin/fraud reports --port 8765 & trap "kill $$!" EXIT; \
	FRAUD_DATA_DIR=$(DATA) DAGSTER_HOME=$(DATA)/dagster_home $(VENV)/bin/dg dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP) ## benchmarks; figures go to BENCHMARKS.md
	$(PY) benchmarks/bench_simulator.py
	$(PY) benchmarks/bench_features.py --sizes reference 10M --engines polars --repeat 5
	$(PY) benchmarks/bench_features.py --sizes reference 10M --engines spark --repeat 1
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_backtest.py --seeds 0 1 2
	command -v wrk >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk
	$(PY) benchmarks/bench_serving.py
	$(PY) benchmarks/bench_stream.py

clean:
	rm -rf $(DATA) .pytest_cache
