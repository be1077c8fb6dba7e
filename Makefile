# Every target creates the virtual environment it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export MEDJAX_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup test demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

test: setup
	$(BIN)/python -m pytest tests

# The main job: train the seed CNN on BreastMNIST, then evaluate its best checkpoint on the test split.
demo: setup
	$(BIN)/python -m medjax.experiment --config=configs/breast_cnn.py --workdir=workdirs/breast_cnn

clean:
	rm -rf $(VENV) workdirs
