# Two commands do everything on a machine with only python3 and make:
#   make run   -> virtualenv, install, embedded PostgreSQL, demo data, API server
#   make test  -> virtualenv, install, lint, type-check, whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest bench lock clean system-deps

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Optional OS packages used by tests (SoftHSM2 for the PKCS#11 path). Best effort:
# the tests that need them skip with a clear message when they are missing.
system-deps:
	@command -v softhsm2-util >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q softhsm2 >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q softhsm2 >/dev/null 2>&1)) || true; }

run: install
	$(BIN)/qenex demo

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install system-deps
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench.run_all

# Regenerate the pinned lock file from pyproject.toml (needs network access to PyPI).
lock: install
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock

clean:
	rm -rf $(VENV) .qenex-test .pytest_cache .mypy_cache .ruff_cache
