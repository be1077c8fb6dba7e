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

# Two workers (pytest-xdist), a test module per worker: most tests are compile-bound and
# single-threaded, so the 2-core CI machine runs them about twice as fast.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadscope tests

# The main job: train the seed CNN on BreastMNIST, then evaluate its best checkpoint on the test split.
demo: setup
	$(BIN)/python -m medjax.experiment --config=configs/breast_cnn.py --workdir=workdirs/breast_cnn

clean:
	rm -rf $(VENV) workdirs
