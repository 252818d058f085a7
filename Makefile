# Two entry points for a fresh machine: `make demo` and `make test`. Both create or refresh .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit bench bench-quick clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(PY) examples/demo/run_demo.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

unit: $(VENV)/.installed-dev
	$(PY) -m pytest tests/unit -q

test: lint typecheck $(VENV)/.installed-dev
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PY) bench/throughput.py --broker sqlite --tasks 20000
	$(PY) bench/latency.py --broker sqlite --count 1000

# The hot path's regression guard (about a minute, needs Redis): ratio to Celery, cold start, def/async share.
bench-quick: $(VENV)/.installed-dev
	$(PY) bench/quick.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache celeriac.db celeriac.db-*
