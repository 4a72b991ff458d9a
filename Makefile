# The two commands of the README: `make run` (the main job) and `make test`.
VENV ?= .venv
HOME_DIR ?= work
PYTEST_ARGS ?=
# Minutes the Trainer may train (ModelConfig.train_minutes); 0, the
# default: all of the default's 28 epochs, however long they take.
# `make run TRAIN_MINUTES=17` keeps the whole run near 20 minutes on a
# 2-core AVX2 machine (the other steps take ~3) for ~0.7 points of test
# accuracy there (README "A time budget").
TRAIN_MINUTES ?= 0

.PHONY: setup run test test-fast benchmark clean

setup:
	VENV=$(VENV) scripts/setup.sh

# Ingest the full real dataset as span 1 (if no span yet), run the whole TFX
# pipeline locally, print the summary and write the HTML report.
run: setup
	$(VENV)/bin/fmnist run --home $(HOME_DIR) --model-param train_minutes=$(TRAIN_MINUTES)

# Everything, e2e included (the real pipeline on a slice of the real data).
test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Without the e2e pipeline runs.
test-fast: setup
	$(VENV)/bin/python -m pytest -m 'not e2e' $(PYTEST_ARGS)

clean:
	rm -rf $(HOME_DIR)
