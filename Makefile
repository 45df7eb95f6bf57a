# Agent orchestration service. `make help` lists the targets.
# Every target installs what it needs first, so `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
# Every dependency, pinned with hashes (uv pip compile); `make lock` refreshes it.
LOCK := requirements.lock
ADDRESS ?= 127.0.0.1:50051
DB ?= orchestrator.db

# Fragments owned by parts of the project (polyglot clients, ...) add their own targets.
-include mk/*.mk

.PHONY: help install lock gen check-gen lint format typecheck test run bench soak clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --require-hashes -r $(LOCK)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the service, client and dev tools (from the hashed lock)

lock: ## Re-resolve every dependency of pyproject.toml into requirements.lock (with hashes)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip compile pyproject.toml --extra dev --extra bench --generate-hashes \
		--python-version 3.11 --quiet -o $(LOCK)

gen: $(STAMP) gen-polyglot ## Regenerate the stubs of every client from proto/
	$(PY) scripts/gen_protos.py

check-gen: $(STAMP) check-gen-polyglot ## Fail if committed generated code differs from proto/
	$(PY) scripts/gen_protos.py --check

lint: $(STAMP) ## ruff, buf lint, and buf breaking against main's last commit
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/buf lint
	$(PY) scripts/check_breaking.py

format: $(STAMP) ## Format Python code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(STAMP) ## mypy --strict over our code
	$(VENV)/bin/mypy

test: $(STAMP) ## Set up everything and run lint, type checks, the drift check and the tests
	$(MAKE) --no-print-directory check-gen lint typecheck conformance-build
	$(VENV)/bin/pytest

run: $(STAMP) ## Start the service with its embedded defaults (SQLite + the dev model when no provider is set)
	$(VENV)/bin/orchestrator serve --address $(ADDRESS) --db $(DB)

bench: $(STAMP) ## Run the benchmarks; prints ratios against baselines measured in the same run
	$(PY) scripts/bench.py

soak: $(STAMP) ## 200 streams for 60 s, then 5,000 turns cancelled at random points: 0 errors, 0 runs left running, RSS growth < 10 %
	$(PY) scripts/soak.py

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache client/go/.tools client/ts/node_modules client/ts/dist
