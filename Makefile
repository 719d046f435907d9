# scalebench: `make demo` sets up .venv and runs the main job; `make test` runs the tests.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# the main job: every registered method, quick preset, embedded multi-resolution MNIST
DEMO_ARGS ?= --methods all --dataset mnist-res --preset quick

.PHONY: setup dev demo test test-slow lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: setup
	$(BIN)/bench run $(DEMO_ARGS)

test: dev
	$(BIN)/pytest

test-slow: dev
	$(BIN)/pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
