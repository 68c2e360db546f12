PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup digits test lint bench clean

$(BIN)/specc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

# each extra once, again when pyproject.toml changes (kept: not an intermediate file to clean up)
.PRECIOUS: $(VENV)/.extra-%
$(VENV)/.extra-%: $(BIN)/specc
	$(BIN)/python -m pip install -q -e '.[$*]'
	touch $@

setup: $(BIN)/specc

digits: setup  ## train the shipped example: handwritten digits, ~98% validation accuracy
	$(BIN)/specc train specs/digits.yaml --overwrite

test: $(VENV)/.extra-test $(VENV)/.extra-keras $(VENV)/.extra-onnx  ## the tests, with Keras and onnxruntime to compare with
	$(BIN)/python -m pytest -q

lint: $(VENV)/.extra-lint  ## ruff (style, imports, likely bugs) and mypy (types) over the package
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.extra-bench
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
