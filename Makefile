# The two entry points of README.md. Both do all set-up first (idempotent).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m cygno_dm.demo

test: setup
	$(PY) -m pytest -ra $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	-$(VENV)/bin/cygno-dm testbed down
	rm -rf .state
