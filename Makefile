# retime — the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RETIME := $(VENV)/bin/retime

.PHONY: setup weights clips demo test test-fast bench clean

# torch==2.13.0 first: it is the CPU build on this machine's disk; a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP) weights clips

weights: $(STAMP)
	$(PY) scripts/fetch_assets.py weights

clips: $(STAMP)
	$(PY) scripts/fetch_assets.py clips

reference: $(STAMP)
	$(PY) scripts/fetch_assets.py reference

demo: setup
	$(PY) scripts/demo.py

test: setup reference
	$(PY) -m pytest

test-fast: setup reference
	$(PY) -m pytest -m "not slow"

bench: setup
	$(RETIME) bench-suite --out docs/benchmarks.md

clean:
	rm -rf out .pytest_cache
