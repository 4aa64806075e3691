# Rampart — two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: install sysdeps run test bench lint clean serve

install: $(STAMP) sysdeps

# Debian packages the tests and reports use: headless Chromium (dashboard tests), pdftoppm (PDF checks),
# the DejaVu TTF (PDF Unicode). Installed only when missing; needs root or sudo.
SYSPKGS := chromium poppler-utils fonts-dejavu-core
sysdeps:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

# The venv with the exact pinned set (constraints.txt resolves prefect, ccxt, GX... together).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

## run: paper-validate the default strategy on a synthetic market (offline), then, if the gate passes, a ~2-minute
## accelerated live session against a local sandbox exchange it starts itself; prints verdict, summary and paths
run: install
	$(PY) -m core.demo

## test: the lint (ruff, mypy, the import contracts), then every test (real-data tests need ../shared; they skip
## without it), in TEST_WORKERS processes (pytest-xdist): most tests wait on local servers, so two workers on two
## cores take the suite from about 19 to about 11 minutes. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: lint
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

## serve: a local persistent Prefect server (analytics off, data in data/prefect), the `rampart` work pool, every
## deployment of prefect.yaml with its schedule, and a worker; UI at http://127.0.0.1:4200. Ctrl-C stops it all.
serve: install
	VENV=$(abspath $(VENV)) scripts/serve.sh

## bench: replay benchmark against backtesting.py in the same run (see docs/benchmarks.md)
bench: install
	$(PY) bench/replay.py

## lint: ruff, mypy on core/, and the layering contracts of pyproject.toml (import-linter)
lint: install
	$(VENV)/bin/ruff check core flows tasks tests bench
	$(VENV)/bin/mypy core
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
