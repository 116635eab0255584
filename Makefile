# Two commands do everything on a machine with only python3 and make:
#   make run   -> virtualenv, install, embedded PostgreSQL, demo data, API server
#   make test  -> virtualenv, install, lint, type-check, whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest bench lock clean system-deps

# requirements.lock: what the server needs at run time (the Docker image installs only this);
# requirements-dev.lock: the dev extra on top (tests, linters). Development installs both.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Optional OS packages used by tests (SoftHSM2 for the PKCS#11 path): installed with apt-get as
# root, or through passwordless sudo; otherwise one line says so and the HSM tests skip
# (CI sets QENEX_REQUIRE_HSM=1, which makes them fail instead).
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q softhsm2 >/dev/null 2>&1 || \
  { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q softhsm2 >/dev/null 2>&1; }
system-deps:
	@if command -v softhsm2-util >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: SoftHSM2 not installed (no apt-get here; install softhsm2 yourself); the HSM tests will skip"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  sh -c '$(APT_INSTALL)' || echo "system-deps: apt-get install softhsm2 failed; the HSM tests will skip"; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then \
	  sudo -n sh -c '$(APT_INSTALL)' || echo "system-deps: sudo apt-get install softhsm2 failed; the HSM tests will skip"; \
	else \
	  echo "system-deps: SoftHSM2 not installed (needs root or passwordless sudo: apt-get install softhsm2); the HSM tests will skip"; \
	fi

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

# Regenerate the pinned lock files from pyproject.toml (needs network access to PyPI): the
# runtime lock (dependencies plus the tracing extra), then the dev extra constrained to it so
# both agree on every shared pin.
lock: install
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra tracing --python-version 3.11 -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra tracing --extra dev -c requirements.lock --python-version 3.11 -q \
	  -o requirements-dev.lock

clean:
	rm -rf $(VENV) .qenex-test .pytest_cache .mypy_cache .ruff_cache
