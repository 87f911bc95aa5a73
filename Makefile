# retime — the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RETIME := $(VENV)/bin/retime

.PHONY: setup weights clips reference peers demo test test-fast bench clean

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

# The bench's one runnable peer, ffmpeg's minterpolate: an ffmpeg on PATH, else the static build imageio-ffmpeg's
# wheel ships (68 MB; not needed by retime or its tests).
peers: $(STAMP)
	$(PY) -m pip install --quiet 'imageio-ffmpeg==0.8.1'

# The main job on real footage: bigbuckbunny.mp4 has real duplicated frames from a 24->25 fps conversion.
demo: setup
	@mkdir -p out
	$(RETIME) fix-drops assets/clips/bigbuckbunny.mp4 out/bigbuckbunny-fixed.mp4 --overwrite --report out/bigbuckbunny-fixed.json
	$(RETIME) upsample --factor 2 assets/clips/bikes.mp4 out/bikes-50fps.mp4 --overwrite --report out/bikes-50fps.json
	@echo "results in out/: bigbuckbunny-fixed.mp4 (+ .json report), bikes-50fps.mp4 (+ .json report)"

test: setup reference
	$(PY) -m pytest

test-fast: setup reference
	$(PY) -m pytest -m "not slow"

bench: setup reference peers
	$(PY) scripts/bench_suite.py --out docs/benchmarks.md

clean:
	rm -rf out .pytest_cache
