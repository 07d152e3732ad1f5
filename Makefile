# Two commands from a fresh clone:  `make up` (local stack + demo model)  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# Root in CI; elsewhere apt needs sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test lint typecheck unit synth bench clean browser

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lambda,serving,build,infra,dev]'
	touch $@

infra/node_modules/.installed: infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund --loglevel=error
	touch $@

up: $(BIN)/.installed
	$(BIN)/modelway up --host $(HOST) --port $(PORT)

# A headless browser renders /docs in a test (tests/api/test_docs.py): Debian's Chromium.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

test: $(BIN)/.installed infra/node_modules/.installed browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

synth: $(BIN)/.installed infra/node_modules/.installed
	PATH=$(abspath $(BIN)):$$PATH npx --prefix infra cdk synth -c env=$${ENV:-dev} --quiet

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_router.py
	$(BIN)/python benchmarks/bench_local_path.py

clean:
	rm -rf $(VENV) .modelway cdk.out infra/node_modules .pytest_cache .mypy_cache .ruff_cache
