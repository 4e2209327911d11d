# Stitchboard: `make run` starts the console, `make test` runs the whole suite.
# Both set themselves up: a .venv with the project installed in editable mode.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser run serve test test-fast stress bench lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required ($(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The console plus a simulated health system (history on first start, then live traffic).
run: install
	$(BIN)/stitchboard demo

# The console alone, for your own data.
serve: install
	$(BIN)/stitchboard serve

# The browser tests drive the system Chromium (Playwright never downloads one).
CHROMIUM := /usr/bin/chromium

browser:
	@test -x $(CHROMIUM) || { \
		echo "installing chromium for the browser tests"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }

# Two worker processes (each test file stays on one, with its own embedded store).
test: install browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=20

# Pure unit tests and the embedded-engine tests: no server subprocess, no browser.
test-fast: install
	$(BIN)/python -m pytest -q tests/unit tests/store

# kill -9 of the server during mixed MLLP + OTLP load, 20 cycles (make test runs 3).
stress: install
	STITCHBOARD_KILL_CYCLES=20 $(BIN)/python -m pytest -q tests/e2e/test_spool_crash.py

bench: install
	$(BIN)/python -m bench

# Style and types: ruff, then mypy on the packages listed in pyproject.toml ([tool.mypy]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
