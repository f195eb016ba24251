# medviz — `make help` lists the targets.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-all tables-synthblood lint format clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv (if missing) and install medviz with its dev tools

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install ## Train t-SimCNE on the built-in dataset (CPU quickstart) and print the map's metrics
	$(PY) train.py experiment=quickstart

test: install ## Run the test suite (fast; what CI runs)
	$(PY) -m pytest

test-all: install ## Run every test, including those marked slow
	$(PY) -m pytest -m "not gpu"

tables-synthblood: install ## CPU miniature of Tables 2-3 on synthblood (3 augmentation sets x 3 seeds + pixel t-SNE; ~45 min)
	$(PY) train.py -m experiment=synthblood_tables hydra.sweep.dir=multirun/synthblood_tables
	$(PY) evaluate.py runs=[multirun/synthblood_tables] baselines=[pixels] dataset.source.n_images=2000 \
		tables=[2,3] hydra.run.dir=evaluations/synthblood_tables

lint: install ## Lint with ruff
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install ## Format with ruff
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean: ## Remove run outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache .ruff_cache
