# make setup | test | lint | format | bench | cv | docs | wheelhouse
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on this machine's disk; on a GPU workstation use e.g. TORCH_SPEC="torch" and a CUDA index.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup test test-all lint format bench cv docs wheelhouse clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: setup
	$(BIN)/pytest -n 2 -q

lint: setup
	$(BIN)/ruff check loes tests benchmarks
	$(BIN)/ruff format --check loes tests benchmarks

format: setup
	$(BIN)/ruff format loes tests benchmarks
	$(BIN)/ruff check --fix loes tests benchmarks

bench: setup
	$(BIN)/python -m benchmarks

cv: setup
	$(BIN)/loes cv --config configs/cpu.yaml

# the documentation as a website in site/ (README.md's pages, docs/); any warning fails it
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

# wheels for a GPU server without network (its Python: PYTHON_VERSION), never torch; then
# `benchmarks/gpu_check.sh` there. Needs no venv here: pip downloads for the other Python.
PYTHON_VERSION ?= 3.12
wheelhouse:
	PYTHON=$(PYTHON) scripts/wheelhouse.sh $(PYTHON_VERSION) wheelhouse

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info site
