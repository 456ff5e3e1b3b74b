# Two commands for a fresh machine with Python 3.11:
#   make repro   create .venv, install requirements.txt, run the whole DVC pipeline
#   make test    create .venv, install requirements.txt, run the test suite
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-requirements
# DVC runs each stage's `python -m stages.<name>`: this venv's python must come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: repro test bench venv

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	python -m pytest

bench: $(STAMP)
	python benchmarks/bench.py
