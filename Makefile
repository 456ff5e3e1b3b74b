# Two commands for a fresh machine:
#   make repro   create .venv from requirements.lock, run the whole DVC pipeline
#   make test    create .venv from requirements.lock, run the test suite (ruff's checks included)
# More: make params, keep NAME=<experiment>, dry ARGS="epochs=30", gc, predict IMAGES="a.png b.jpg", demo-digits, serve, release VERSION=1.2.0, tune, compare, lint,
# format, bench, mutation, lock.
# `make test` also installs Debian's chromium and postgresql when missing (as root), for the
# browser tests and the shared-study tests.
# Python: the newest of SUPPORTED found on the PATH, or PYTHON=/path/to/python3.X. Of that
# version's builds on the PATH, one with libpython linked in comes first: a distribution's
# (Debian builds it with PGO and LTO) ran .ci/run in 0.76 of the time of pyenv's shared build
# here (13 min 8 s against 17 min 11 s, back to back, 2026-12-02; benchmarks/RESULTS.md).
# Installer: uv (on the PATH, else installed with pip into .tools/): the venv in 30 s where pip
# takes 115 s (2026-11-30, this 2-core machine); INSTALLER=pip uses pip alone. Bytecode is
# compiled at install (--compile-bytecode, 23 s of CPU-bound work): where PYTHONDONTWRITEBYTECODE
# is set, as on this machine, nothing compiles it later, and every process would recompile
# TensorFlow's modules on import (a tiny `dvc exp run` went 2-3x slower, 2026-12-01).

# Every pinned package has wheels for these (numpy 2.4 and jax 0.10 need >= 3.11;
# tensorflow-cpu 2.21 has none past 3.13). Newest first.
SUPPORTED := 3.13 3.12 3.11
UV_VERSION := 0.13.9
VENV := .venv
STAMP := $(VENV)/.installed
# DVC runs each stage's `python -m stages.<name>`: this venv's python must come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# A candidate counts only if it runs (a pyenv shim of an unselected version does not)
# and really is a supported version.
supported = $(1) -c 'import sys; sys.exit(f"{sys.version_info[0]}.{sys.version_info[1]}" not in "$(SUPPORTED)".split())' 2>/dev/null
# Every python3.X on the PATH, in PATH order (this venv's own excepted: it is rebuilt from PYTHON).
on_path = $(filter-out $(CURDIR)/$(VENV)/%,$(foreach d,$(subst :, ,$(PATH)),$(wildcard $(d)/python$(1))))
working = $(foreach p,$(call on_path,$(1)),$(shell $(call supported,$(p)) && echo $(p)))
# Linked in, not loaded from libpython3.X.so (as pyenv's --enable-shared builds do; Linux only).
linked_in = $(foreach p,$(1),$(shell $(p) -c 'import sys; sys.exit(any("libpython" in m for m in open("/proc/self/maps")))' 2>/dev/null && echo $(p)))
best_build = $(firstword $(call linked_in,$(1)) $(1))
# Probed once, when a recipe first needs it.
PYTHON ?= $(eval PYTHON := $(firstword $(foreach v,$(SUPPORTED),$(call best_build,$(call working,$(v))))))$(PYTHON)
INSTALLER ?= uv
UV ?= $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
# Expanded inside a recipe, so only the targets that need a Python stop (with one line) without one.
check_python = $(if $(PYTHON),,$(error no supported Python found: this project needs Python 3.11, 3.12 or 3.13 (python3.11 to python3.13 on the PATH were tried); install one, or point at it: make test PYTHON=/path/to/python3.12))$(if $(shell $(call supported,$(PYTHON)) && echo ok),,$(error PYTHON=$(PYTHON) is not a working Python 3.11, 3.12 or 3.13; point PYTHON at one of those))

# pytest-xdist workers for `make test` (auto: one per core).
WORKERS ?= auto
.PHONY: repro test browser database test-fast mutation bench compare params keep dry gc predict demo-digits serve release tune lint format lock venv clean

venv: $(STAMP)

$(STAMP): requirements.lock
	$(check_python)
	rm -rf $(VENV)
ifeq ($(INSTALLER),uv)
	test -x $(UV) || { $(PYTHON) -m venv .tools && .tools/bin/pip install --quiet uv==$(UV_VERSION); }
	$(UV) venv --quiet --seed --python "$(PYTHON)" $(VENV)
	$(UV) pip sync --quiet --require-hashes --compile-bytecode --python $(VENV)/bin/python requirements.lock
	$(UV) pip install --quiet --no-deps --no-build-isolation --python $(VENV)/bin/python -e .
else
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
endif
	touch $@

repro: $(STAMP)
	dvc repro

# -n auto: one pytest worker per core (pytest-xdist); the suite is mostly subprocesses that
# each use one core. --dist worksteal: a worker that runs out of tests takes queued ones from
# the other, where load scheduling left one idle for the last 139 s. 500 s of tests on two
# workers, 1443 s on one (2026-11-30, 2 cores; benchmarks/RESULTS.md).
test: $(STAMP) browser database
	python -m pytest -n "$$TEST_WORKERS" --dist worksteal
test: export TEST_WORKERS := $(WORKERS)

# The page's tests drive Debian's Chromium (Playwright's own download cannot work offline):
# installed here when missing and this is a root shell with apt-get, else one line saying what to do.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
browser:
	@test -x "$(CHROMIUM)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing Debian's chromium for the browser tests" >&2; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	      || { echo "make: apt-get could not install chromium; install it, or point CHROMIUM=/path/to/chromium" >&2; exit 1; }; \
	  else \
	    echo "make: the browser tests need Chromium: apt-get install chromium (as root), or CHROMIUM=/path/to/chromium" >&2; exit 1; \
	  fi; \
	  test -x "$(CHROMIUM)" || { echo "make: no Chromium at $(CHROMIUM); point CHROMIUM=/path/to/chromium" >&2; exit 1; }; }

# The shared-study tests start a throwaway PostgreSQL server (initdb in a temp dir, 127.0.0.1):
# Debian's postgresql is installed here when missing and this is a root shell with apt-get.
database:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing Debian's postgresql for the shared-study tests" >&2; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null \
	      || { echo "make: apt-get could not install postgresql; install PostgreSQL (initdb, pg_ctl) yourself" >&2; exit 1; }; \
	  else \
	    echo "make: the shared-study tests need PostgreSQL: apt-get install postgresql (as root)" >&2; exit 1; \
	  fi; }

# The inner loop: everything but the end-to-end DVC runs and the heavy stage subprocesses.
test-fast: $(STAMP)
	python -m pytest -m "not slow"

# Mutation testing of stages/ against the fast tier (settings in pyproject.toml); not in CI.
# Its report: mutants/results.txt (the survivors; not kept in git, it goes stale as code moves).
mutation: $(STAMP)
	rm -rf mutants
	mutmut run --max-children 2
	mutmut results --all true > mutants/results.txt || true

compare: $(STAMP)
	python -m mnist_classifier.compare

# Every variable a person sets (NAME, IMAGES, VERSION, STAGE, ARGS, TRIALS, ...) reaches the
# command as data: exported to its environment and quoted there, never pasted into the shell
# line, so `VERSION='1.2.3; touch X'` is a bad version, not a second command.

# params.yaml from conf/, as `dvc exp run` composes it (for a plain `dvc repro` after editing conf/).
# Overrides as with -S: make params ARGS="model=cnn epochs=40"
params: $(STAMP)
	python -m mnist_classifier.composition $$PARAMS_ARGS
params: export PARAMS_ARGS := $(ARGS)

# Keep an experiment: apply it, write its params into conf/ (so the next `dvc exp run` starts
# from them, not from conf/'s old values), commit. NAME is passed as data, never as shell.
keep: $(STAMP)
	$(if $(NAME),,$(error name the experiment: make keep NAME=exp-1a2b3 (dvc exp show lists them)))
	python -m mnist_classifier.workspace keep "$$KEEP_NAME"
keep: export KEEP_NAME := $(NAME)

# Which stages `dvc exp run -S ...` would rerun, running nothing:
# make dry ARGS="epochs=30 model=cnn"
dry: $(STAMP)
	python -m mnist_classifier.workspace dry $$DRY_ARGS
dry: export DRY_ARGS := $(ARGS)

# Reclaim DVC cache space, keeping the workspace, every branch, tag (release) and experiment.
gc: $(STAMP)
	python -m mnist_classifier.workspace gc

predict: $(STAMP)
	$(if $(IMAGES),,$(error name the pictures: make predict IMAGES="my_seven.jpg other.png"))
	python -m mnist_classifier.predict $$PREDICT_IMAGES
predict: export PREDICT_IMAGES := $(IMAGES)

# The demo own set: scikit-learn's UCI digits rendered as photos in data/own/uci_digits (docs/own-data.md).
demo-digits: $(STAMP)
	python -m mnist_classifier.demo_digits $$DEMO_ARGS
demo-digits: export DEMO_ARGS := $(ARGS)

# The draw-a-digit page and its JSON API on http://127.0.0.1:8000/ (ARGS="--rev v1.2.0 --port 8080",
# ARGS="--collect data/own/collected" to save corrections as an own set).
serve: $(STAMP)
	python -m mnist_classifier.serve $$SERVE_ARGS
serve: export SERVE_ARGS := $(ARGS)

# Register the committed model as a version (GTO tag), optionally at a stage: make release VERSION=1.2.0 STAGE=prod
release: $(STAMP)
	$(if $(VERSION),,$(error name the version: make release VERSION=1.2.0 [STAGE=prod]))
	python -m mnist_classifier.release "$$RELEASE_VERSION" $${RELEASE_STAGE:+--stage "$$RELEASE_STAGE"}
release: export RELEASE_VERSION := $(VERSION)
release: export RELEASE_STAGE := $(STAGE)

# A search where every trial is a DVC experiment (the space: tune.yaml; docs/tuning.md).
# make tune TRIALS=16 JOBS=2 [STORAGE=postgresql://user@host/db PUSH=origin STUDY=name]
tune: $(STAMP)
	python -m mnist_classifier.tuning $${TUNE_TRIALS:+--trials "$$TUNE_TRIALS"} $${TUNE_JOBS:+--jobs "$$TUNE_JOBS"} \
	    $${TUNE_STORAGE:+--storage "$$TUNE_STORAGE"} $${TUNE_PUSH:+--push "$$TUNE_PUSH"} \
	    $${TUNE_STUDY:+--study "$$TUNE_STUDY"}
tune: export TUNE_TRIALS := $(TRIALS)
tune: export TUNE_JOBS := $(JOBS)
tune: export TUNE_STORAGE := $(STORAGE)
tune: export TUNE_PUSH := $(PUSH)
tune: export TUNE_STUDY := $(STUDY)

# ruff, configured in pyproject.toml; `make test` runs the same checks.
lint: $(STAMP)
	ruff check .
	ruff format --check .

format: $(STAMP)
	ruff check --fix .
	ruff format .

bench: $(STAMP)
	python benchmarks/bench.py

# Re-resolve every package from requirements.txt, with hashes, for all supported Pythons
# and platforms (uv's universal mode). uv itself comes from PyPI into .tools/, never into .venv.
lock: requirements.txt
	$(check_python)
	test -x $(UV) || { $(PYTHON) -m venv .tools && .tools/bin/pip install --quiet uv==$(UV_VERSION); }
	$(UV) pip compile requirements.txt --universal --generate-hashes \
	    --python-version $(lastword $(SUPPORTED)) --quiet -o requirements.lock

clean:
	rm -rf $(VENV) .tools
