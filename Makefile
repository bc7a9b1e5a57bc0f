# psconnect — two commands on a fresh machine: `make run` and `make test`.
# The environment is created on first use: uv in .tools/, the locked project in .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup bytecode lint typecheck contracts contracts-check spectral browser services bench bench-gateway bench-ttb bench-dashboards clean

run: setup bytecode
	$(BIN)/psconnect serve

test: setup browser services bytecode
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/psconnect contracts generate --check
	$(BIN)/psconnect contracts lint
	$(BIN)/psconnect contracts diff contracts/releases contracts/openapi --fail-on breaking
	@$(MAKE) --no-print-directory spectral
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25

setup: $(VENV)/.synced

# Bytecode, written ahead: these machines set PYTHONDONTWRITEBYTECODE=1, so without it every Python process the
# suite starts (each `psconnect serve`, worker and CLI call) compiles every module it imports anew, about 3 s of
# CPU each. A .pyc older than its source is ignored, so an edited module is never run stale.
PACKAGES := contracts foundation system_apis process_apis experience_apis policies web gateway cli governance
bytecode: setup
	@$(BIN)/python -m compileall -q -j 0 $(PACKAGES) tests benchmarks

# Spectral (spectral:oas + OWASP API Security Top 10 2023, .spectral.yaml) when Node is present.
spectral:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		{ test node_modules/.package-lock.json -nt package-lock.json || npm ci --no-audit --no-fund --loglevel=error; } && \
		npx --no-install spectral lint "contracts/openapi/*.json" --fail-severity error --display-only-failures; \
	else echo "spectral: skipped: node not found (the house-rule lint above still ran)"; fi

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	touch $@

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy
	$(BIN)/lint-imports

contracts: setup
	$(BIN)/psconnect contracts generate

# Debian's Chromium for the browser tests (Playwright drives it; its own browser download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || bash .ci/install-chromium.sh

# Redis and PostgreSQL for the tests that use them in production roles; started when not running.
services:
	@bash .ci/services.sh

bench: setup bench-gateway bench-ttb bench-dashboards

# Gateway governance benchmark (not in `make test`): nginx floor, bare handler, governed path, nginx proxy,
# remote upstream and the Python peer (its own dependency group `bench-peer`, synced here only); then the telemetry
# hook's CPU per request with metrics alone and with tracing on.
bench-gateway: setup services
	@{ command -v wrk && command -v nginx; } >/dev/null 2>&1 || \
		{ apt-get install -y -q wrk nginx || { apt-get update -q && apt-get install -y -q wrk nginx; }; }
	$(UV) sync --frozen --quiet --group bench-peer
	$(BIN)/python -m benchmarks.gateway.run
	$(BIN)/python -m benchmarks.telemetry.run  # CPU the metrics and tracing hook adds per governed request

# Month-end time-to-bill benchmark (not in `make test`): the 1k/2k/4k-worker scaling line, then 10,000 workers
# (440,000 entries): floor, clean (with reconciliation), faults, and clean on PostgreSQL.
bench-ttb: setup services
	$(BIN)/python -m benchmarks.time_to_bill.run --workers 10000

# Dashboards on the month-end data set (not in `make test`): facts refresh time, p50/p99 per widget on PostgreSQL.
bench-dashboards: setup services
	$(BIN)/python -m benchmarks.dashboards.run

clean:
	rm -rf var artifacts .pytest_cache .mypy_cache .ruff_cache
