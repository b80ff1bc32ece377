# The product's front door: `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JS     := tests/js
JS_STAMP := $(JS)/node_modules/.installed

.PHONY: install serve emulator test lint typecheck format bench clean nginx-installed chromium-installed \
	promtool-installed

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# fal's JS client, for the tests that drive it through the gateway (needs Node.js and npm).
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	@command -v npm >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && apt-get install -y -qq nodejs npm; } \
		|| { echo "make test needs Node.js and npm (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix $(JS) --silent --no-audit --no-fund
	@touch $(JS_STAMP)

## Embedded Redis + fal emulator + gateway on http://127.0.0.1:8000, with a demo key (Ctrl-C stops all).
serve: install
	$(BIN)/fal-gateway dev

## The fal emulator alone on http://127.0.0.1:8765.
emulator: install
	$(BIN)/fal-gateway emulator

lint: install
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench

typecheck: install
	$(BIN)/mypy

# nginx, for the test that runs deploy/nginx.conf (the proxy the gateway needs in front).
nginx-installed:
	@{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null \
		|| { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
			&& apt-get update -qq && apt-get install -y -qq nginx; } \
		|| { echo "make test needs nginx (apt-get install nginx)"; exit 1; }

# Debian's Chromium, for the console's and portal's browser tests (Playwright drives it).
chromium-installed:
	@{ command -v chromium || test -x /usr/bin/chromium; } >/dev/null \
		|| { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
			&& apt-get update -qq && apt-get install -y -qq chromium; } \
		|| { echo "make test needs Chromium (apt-get install chromium)"; exit 1; }

# promtool (Debian's prometheus package), for the tests of the alert rules and the dashboard.
promtool-installed:
	@command -v promtool >/dev/null \
		|| { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
			&& apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } \
		|| { echo "make test needs promtool (apt-get install prometheus)"; exit 1; }

test: lint typecheck $(JS_STAMP) nginx-installed chromium-installed promtool-installed
	$(BIN)/pytest

format: install
	$(BIN)/ruff format gateway tests bench
	$(BIN)/ruff check --fix gateway tests bench

BENCH_STAMP := $(VENV)/.bench-installed

# wrk (load) and nginx (the plain proxy to compare with), and the profiler.
$(BENCH_STAMP): $(STAMP)
	@{ command -v wrk && { command -v nginx || test -x /usr/sbin/nginx; }; } >/dev/null \
		|| { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
			&& apt-get update -qq && apt-get install -y -qq wrk nginx; } \
		|| { echo "make bench needs wrk and nginx (apt-get install wrk nginx)"; exit 1; }
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

## Benchmarks: writes bench/RESULTS.md (a few minutes); not part of `make test`.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.overhead

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
