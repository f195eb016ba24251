# medviz — `make help` lists the targets.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
empty :=
space := $(empty) $(empty)
comma := ,
.PHONY: help install run test test-all browser tables-synthblood tables-synthblood-report paper-miniature \
	paper-miniature-report invariance-miniature invariance-miniature-report lint format clean

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

# One test worker per core (pytest-xdist); an idle worker takes tests queued on the other (worksteal).
PYTEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
PARALLEL := -n $(PYTEST_WORKERS) --dist worksteal

test: install lint ## Lint and type-check, then run the test suite (fast; what CI runs), with the explorer's headless-browser tests
	@if $(MAKE) --no-print-directory browser; then \
		$(PY) -m pytest $(PARALLEL) -m "not slow and not gpu"; \
	else \
		echo "medviz: chromium could not be installed (needs root or password-less sudo and apt);" \
			"the explorer's browser tests are LEFT OUT of this run -- install chromium and chromium-driver, then make test"; \
		$(PY) -m pytest $(PARALLEL); \
	fi

test-all: install browser ## Run every test, including those marked slow and browser
	$(PY) -m pytest $(PARALLEL) -m "not gpu"

browser: ## Install Debian's chromium and chromedriver for the explorer's browser tests (needs root or sudo)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
		$$SUDO timeout 300 apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

SYNTH_SWEEPS := multirun/synthblood_tables multirun/synthblood_tables_simclr multirun/synthblood_tables_byol

tables-synthblood: install ## CPU miniature of Tables 2-3 on synthblood: t-SimCNE, SimCLR, BYOL sweeps + pixel t-SNE (~1.5 h)
	$(PY) train.py -m experiment=synthblood_tables hydra.sweep.dir=multirun/synthblood_tables
	$(PY) train.py -m experiment=synthblood_tables_simclr hydra.sweep.dir=multirun/synthblood_tables_simclr
	$(PY) train.py -m experiment=synthblood_tables_byol hydra.sweep.dir=multirun/synthblood_tables_byol
	$(MAKE) tables-synthblood-report

tables-synthblood-report: install ## Write Tables 2-3 for synthblood from the sweeps above (adds the pixel t-SNE baseline)
	$(PY) evaluate.py "runs=[$(subst $(space),$(comma),$(strip $(wildcard $(SYNTH_SWEEPS))))]" baselines=[pixels] \
		dataset.n_images=2000 tables=[2,3] hydra.run.dir=evaluations/synthblood_tables

MINIATURE_SWEEPS := multirun/paper_miniature multirun/paper_miniature_simclr

paper-miniature: install ## The augmentation claim in miniature: synthblood + digits x 3 augs x 5 seeds, SimCLR linear eval (~1.5 h on 2 CPU cores; a failed job is listed in the report)
	-$(PY) train.py -m experiment=paper_miniature hydra.sweep.dir=multirun/paper_miniature
	-$(PY) train.py -m experiment=paper_miniature_simclr hydra.sweep.dir=multirun/paper_miniature_simclr
	$(MAKE) paper-miniature-report

paper-miniature-report: install ## Report of the sweeps above: paired differences to aug=default, verdicts, seed-0 maps
	$(PY) -m medviz.evaluation.miniature $(MINIATURE_SWEEPS) --out evaluations/paper_miniature

INVARIANCE_SWEEPS := multirun/invariance_miniature multirun/invariance_miniature_reference \
	multirun/invariance_miniature_crossbatch multirun/invariance_miniature_stain

invariance-miniature: install ## Invariance to technical batches in miniature: 2 planted-batch sets x 5 arms x 3 seeds, references, cross-batch positives, HED jitter with batch, Harmony, the screen and new-plate cases (~2 h on 2 CPU cores)
	-$(PY) train.py -m experiment=invariance_miniature hydra.sweep.dir=multirun/invariance_miniature
	-$(PY) train.py -m experiment=invariance_miniature_reference hydra.sweep.dir=multirun/invariance_miniature_reference
	-$(PY) train.py -m experiment=invariance_miniature_crossbatch hydra.sweep.dir=multirun/invariance_miniature_crossbatch
	-$(PY) train.py -m experiment=invariance_miniature_stain hydra.sweep.dir=multirun/invariance_miniature_stain
	-$(PY) train.py -m experiment=quickstart_plates invariance=none,batch hydra.sweep.dir=multirun/invariance_screen
	-$(PY) train.py -m experiment=quickstart_plates invariance=none,batch 'dataset.plate=[Plate1,Plate2]' \
		hydra.sweep.dir=multirun/invariance_new_plate
	-for run in multirun/invariance_new_plate/*_*; do $(PY) -m medviz embed --run $$run dataset.plate=Plate3; done
	$(MAKE) invariance-miniature-report

invariance-miniature-report: install ## Report of the sweeps above (paired differences to invariance=none, targets, Harmony baseline)
	$(PY) -m medviz.evaluation.invariance $(INVARIANCE_SWEEPS) --out evaluations/invariance_miniature
	$(PY) -m medviz.evaluation.screen_case $(wildcard multirun/invariance_screen/0_*) $(wildcard multirun/invariance_screen/1_*)
	for run in multirun/invariance_new_plate/*_*; do \
		$(PY) -m medviz.evaluation.screen_case --new-plate $$run $$run/embedded/Plate3; done

lint: install ## Lint with ruff and type-check medviz/ with mypy (pinned versions, settings in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install ## Format with ruff
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean: ## Remove run outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache .ruff_cache
