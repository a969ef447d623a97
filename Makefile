# Velox: `make run` starts the Ray Serve app; `make test` runs the whole test suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run dev test test-unit lint bench install clean

run: $(STAMP)  ## install what is missing, then serve graph:app on Ray (VELOX_PORT, default 8000)
	$(BIN)/velox serve

dev: $(STAMP)  ## the same app in one process, no Ray
	$(BIN)/velox dev

test: $(STAMP)  ## unit, config, integration (real models, real Ray Serve) and end-to-end calls
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/harness tests/config

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)  ## latency benchmarks; JSON lands in bench/results/
	$(BIN)/python bench/engines.py
	$(BIN)/python bench/call_latency.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/rag.py

install: $(STAMP)

# Reinstall only when the dependency list changes, so a second `make run` starts at once.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
