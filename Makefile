# psconnect — two commands on a fresh machine: `make run` and `make test`.
# The environment is created on first use: uv in .tools/, the locked project in .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup lint typecheck contracts contracts-check browser services bench clean

run: setup
	$(BIN)/psconnect serve

test: setup browser services
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/psconnect contracts generate --check
	$(BIN)/pytest -q

setup: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

contracts: setup
	$(BIN)/psconnect contracts generate

# Debian's Chromium for the browser tests (Playwright drives it; its own browser download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || bash .ci/install-chromium.sh

# Redis and PostgreSQL for the tests that use them in production roles; started when not running.
services:
	@bash .ci/services.sh

bench: setup
	@echo "benchmarks arrive with the time-to-bill and gateway-governance issues"

clean:
	rm -rf var artifacts .pytest_cache .mypy_cache .ruff_cache
