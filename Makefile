# Set-up and entry points. `make test` is the command CI runs (see .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup data test lint bench demo

# Dependencies are installed once per pyproject.toml; the package itself is (re)linked each
# time so that a shared environment can serve several checkouts.
$(VENV)/.deps-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev,faiss]'
	$(BIN)/pip install --quiet --no-deps 'sweeps==0.3.0'
	touch $@

setup: $(VENV)/.deps-installed data
	$(BIN)/pip install --quiet --no-deps -e .

# Fashion-MNIST installs offline from Debian (package dataset-fashion-mnist) where the machine
# has apt and root; elsewhere torchvision downloads it on first use.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null \
	    && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	    || echo "note: dataset-fashion-mnist not installed; its tests will be skipped"; \
	fi

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/radius.py

# The main job: train the small Fashion-MNIST default, certify 200 test inputs with IDRS and
# with constant sigma, print both tables, write plots, a comparison and offline W&B runs.
DEMO := runs/demo
CERTIFY := --N 2000 --N0 64 --eval-subset-size 200

# It starts afresh: the previous demo run (train.py refuses an existing run directory) is removed.
demo: setup
	rm -rf $(DEMO)
	$(BIN)/python train.py fit --run_name=demo --trainer.enable_progress_bar=false
	$(BIN)/python certify.py $(DEMO)/checkpoints/last.ckpt $(DEMO)/certify-idrs $(CERTIFY)
	$(BIN)/python certify.py $(DEMO)/checkpoints/last.ckpt $(DEMO)/certify-constant \
	    $(CERTIFY) --constant
	$(BIN)/python -m idrs_lightning.reporting.compare $(DEMO)/certify-idrs $(DEMO)/certify-constant \
	    --output $(DEMO)/comparison
	@echo "results, plots and offline W&B runs are in $(DEMO)/"
