# scaleqbench: `make demo` sets up .venv and runs the main job; `make test` runs the tests.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# the main job: every registered method, three seeds, quick preset, embedded multi-resolution MNIST
DEMO_ARGS ?= --methods all --dataset mnist-res --preset quick --seeds 0-2

.PHONY: setup dev demo test test-tools test-slurm test-slow test-gpu lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# setup.py and the kernel source: an editable install compiles the kernel once, so a changed
# source must be compiled again
$(VENV)/.installed: pyproject.toml setup.py $(wildcard methods/fourier/*.cpp methods/fourier/*.h methods/fourier/*.inc) | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: setup
	$(BIN)/bench run $(DEMO_ARGS)

# the README's test command (and CI's): the default suite, then the Slurm tests against a real
# single-node cluster that tests/slurm/slurm-up.sh installs and starts (root; Debian packages)
# and slurm-down.sh stops, whatever the tests did. Without root the Slurm tests skip, saying why.
test: dev test-tools
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest
	$(MAKE) --no-print-directory test-slurm

# system tools the tests use when they can be installed here: chromium for the report's page
test-tools:
	@if [ "$$(id -u)" = 0 ] || command -v chromium >/dev/null; then \
	  sh tests/browser/install-chromium.sh; \
	else echo "test-tools: not root, chromium absent: the browser test will skip"; fi

test-slurm: dev
	@if [ "$$(id -u)" = 0 ]; then \
	  trap 'bash tests/slurm/slurm-down.sh' EXIT; \
	  bash tests/slurm/slurm-up.sh && SCALEQBENCH_REQUIRE_SLURM=1 HYPOTHESIS_PROFILE=ci $(BIN)/pytest -m slurm; \
	else $(BIN)/pytest -m slurm; fi

test-slow: dev
	$(BIN)/pytest -m slow

# the GPU checks wherever torch sees a CUDA GPU (pytest -m gpu, bench perf and a paper-preset
# run on CUDA), reported in results/reference/gpu/<card>.md; without a GPU one line, exit 0
test-gpu: dev
	$(BIN)/python tests/gpu/gpu_checks.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
