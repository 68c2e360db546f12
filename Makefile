PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup digits test bench clean

$(BIN)/specc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/specc

digits: setup  ## train the shipped example: handwritten digits, ~98% validation accuracy
	$(BIN)/specc train specs/digits.yaml --overwrite

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
