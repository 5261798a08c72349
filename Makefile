# Quick start (fresh machine, nothing installed by hand):
#   make demo   set up .venv and run the main job (the mini pipeline on synthcrowd)
#   make test   set up .venv and run the tests (what CI runs)
#   make paper-smoke   every distinct model of the paper profile, 2 iterations at the paper's
#                      input size on synthcrowd (docs/paper_scale.md; SMOKE_ARGS=--list)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= mini
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean-venv paper-smoke

setup: $(STAMP)

# torch/torchvision are pinned in pyproject.toml to what installs on this machine kind
# (torch==2.14.1, torchvision==0.29.1). The stamp is redone when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/dvc config --global core.analytics false >/dev/null 2>&1 || true
	touch $@

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake all --profile local --cores $(CORES) --config profile=$(PROFILE)

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

paper-smoke: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m lla.smoke $(SMOKE_ARGS)

clean-venv:
	rm -rf $(VENV)
