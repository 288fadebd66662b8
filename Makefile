# Resync: `make run` (embedded default) and `make test` (real PostgreSQL and Redis).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Python 3.13: a plain python3.13 on PATH, else pyenv's 3.13 (how these machines provide it).
PYTHON313 := $(shell for c in python3.13 "$$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13" "$$HOME/.pyenv/versions/3.13.0/bin/python3.13"; do \
	if "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then command -v "$$c"; break; fi; done)

TEST_ENV := RESYNC_ENV=test \
	DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/resync} \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
	RESYNC_DATA_DIR=$${TEST_DATA_DIR:-$(CURDIR)/var/test}

# Benchmarks keep off the suite's databases (each bench creates its own PostgreSQL database).
BENCH_ENV := RESYNC_ENV=test \
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/resync_bench} \
	REDIS_URL=$${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14} \
	RESYNC_DATA_DIR=$(CURDIR)/var/bench

.PHONY: help run test lint lock venv-run venv-test services bench messages security

help:
	@echo "make run    set up and serve Resync on the embedded default"
	@echo "make test   set up and run the whole suite on real PostgreSQL and Redis"
	@echo "make lock   recompile requirements/*.txt with hashes after editing requirements/*.in"

$(VENV)/bin/python:
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found: install python3.13 (or pyenv 3.13.0)" >&2; exit 1; }
	$(PYTHON313) -m venv $(VENV)


venv-run: $(VENV)/bin/python
	@stamp=$(VENV)/.installed-base-$$(sha256sum requirements/base.txt | cut -c1-16); \
	if [ ! -f $$stamp ] && [ ! -f $(VENV)/.installed-dev-$$(sha256sum requirements/dev.txt | cut -c1-16) ]; then \
		$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/base.txt && touch $$stamp; fi

venv-test: $(VENV)/bin/python
	@stamp=$(VENV)/.installed-dev-$$(sha256sum requirements/dev.txt | cut -c1-16); \
	if [ ! -f $$stamp ]; then $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt && touch $$stamp; fi

run: venv-run
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

services:
	@bash .ci/system-packages
	@bash .ci/services-up

test: venv-test services security
	$(VENV)/bin/ruff check .
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# Security checks (part of `make test`): bandit fails on any high-severity finding; pip-audit on
# the locked requirements fails on any known vulnerability and says loudly when it could not check
# (PIP_AUDIT_STRICT=1 makes that a failure too; see tests/security/pip_audit_check.py).
security: venv-test
	$(VENV)/bin/bandit -q -r . -x ./.venv,./var,./node_modules,./test-artifacts --severity-level high
	$(PY) tests/security/pip_audit_check.py requirements/dev.txt  # every runtime pin plus the test tools

lint: venv-test
	$(VENV)/bin/ruff check .

messages: venv-test
	$(PY) manage.py makemessages -l pt_BR -l en --ignore=.venv --ignore=var
	$(PY) manage.py makemessages -d djangojs -l pt_BR -l en --ignore=.venv --ignore=var --ignore=static/vendor
	$(PY) manage.py compilemessages --ignore=.venv

lock: $(VENV)/bin/python
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile --python-version 3.13 --generate-hashes -q requirements/base.in -o requirements/base.txt
	$(VENV)/bin/uv pip compile --python-version 3.13 --generate-hashes -q requirements/dev.in -c requirements/base.txt -o requirements/dev.txt

bench: venv-test services
	@for b in bench/*.py; do echo "== $$b"; $(BENCH_ENV) $(PY) $$b || exit 1; done
