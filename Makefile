# Two commands do everything on a fresh Linux box with Python 3.11:
#   make figures   # set up .venv if needed, then run every notebook (smoke profile) -> figures/ + report
#   make test      # set up .venv if needed, then ruff + the whole test suite
# Options: make figures PROFILE=cpu|paper ARGS="--only checkerboard_toy -p seeds=3"
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
ARGS ?=
PYTEST_ARGS ?=
STAMP := $(VENV)/.specreg-installed

.PHONY: setup figures test lint bench gpu-check clean-executed espeak mutate

setup: $(STAMP) espeak

# The audio notebooks' offline stand-in corpora are spoken by espeak-ng and flite (Debian packages; seconds to
# install): the one-voice stand-in needs espeak-ng, the nine-voice "multivoice" corpus both.
# Installed with apt-get when missing and we are root (or have password-less sudo); otherwise we say how.
TTS_TOOLS := espeak-ng flite
espeak:
	@missing=""; for t in $(TTS_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "== installing$$missing (the speech stand-ins of the audio notebooks)"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    echo "== installing$$missing with sudo (the speech stand-ins of the audio notebooks)"; \
	    sudo -n apt-get update -qq && sudo -n apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	  for t in $$missing; do command -v $$t >/dev/null 2>&1 || echo "!! $$t is missing and could not be installed here; the audio notebooks' speech stand-ins need it: sudo apt-get install $$t | brew install $$t | conda install -c conda-forge $$t" >&2; done; \
	fi

# Re-installs only when requirements.txt or pyproject.toml change. uv is ~4x faster than pip;
# pip is the fallback. The venv's kernel is registered inside the venv (--sys-prefix).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== installing the pinned stack into $(VENV) (first time: ~1-2 min, ~7 GB of CUDA-enabled torch wheels)"
	@( $(PY) -m pip install -q uv==0.13.9 && \
	   $(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -r requirements.txt -e . ) || \
	 ( echo "uv failed; falling back to pip" && $(PY) -m pip install -q -r requirements.txt -e . )
	@$(PY) -m ipykernel install --sys-prefix --name specreg --display-name "Python (specreg)" >/dev/null
	@touch $@

figures: setup
	$(PY) -m specreg_lib.kit.reproduce --profile $(PROFILE) $(ARGS)

lint: setup
	$(PY) -m ruff check .

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# Each benchmark rewrites its committed table under benchmarks/results/ (date, machine, load, command in its header).
bench: setup
	$(PY) benchmarks/bench_audio.py --pairs 4 --out benchmarks/results/bench_audio.txt
	$(PY) benchmarks/bench_edm_checkpoint.py --out benchmarks/results/bench_edm_checkpoint.txt
	$(PY) benchmarks/bench_edm_finetune.py --what overhead --batch 2 --pairs 4 --out benchmarks/results/bench_edm_finetune_overhead.txt
	$(PY) benchmarks/bench_edm_finetune.py --what terms --out benchmarks/results/bench_edm_finetune_terms.txt
	$(PY) benchmarks/bench_generate.py --out benchmarks/results/bench_generate.txt
	$(PY) benchmarks/bench_phase_eps.py --out benchmarks/results/bench_phase_eps.txt
	$(PY) benchmarks/bench_runner.py --out benchmarks/results/bench_runner.txt
	$(PY) benchmarks/bench_pixel_reduction.py --out benchmarks/results/bench_pixel_reduction.txt
	$(PY) benchmarks/bench_samplers.py --out benchmarks/results/bench_samplers.txt
	$(PY) benchmarks/bench_spectral.py --out benchmarks/results/bench_spectral.txt
	$(PY) benchmarks/bench_term_balance.py --out benchmarks/results/bench_term_balance.txt

# One GPU, under 8 minutes: the GPU-marked tests, each regularizer's step-time ratio (fp32, bf16), fine-tuning and
# generation images/s, peak memory at Table 3's batch 16 -> logs/gpu_check.json + a table. CPU: ARGS=--dry-run
gpu-check: setup
	$(PY) benchmarks/gpu_check.py $(ARGS)

# Deliberate bugs (tests/mutate.py's list), each in a temporary copy of the tree: every one must fail the tests listed
# for it. Not part of `make test`. Options: ARGS="--only 3,8" | ARGS=--all (each against the whole suite) | ARGS=--list
mutate: setup
	$(PY) tests/mutate.py $(ARGS)

clean-executed:
	rm -rf executed
