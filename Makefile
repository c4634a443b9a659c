# Two commands set everything up on a fresh machine: `make serve` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml scripts/install.sh | sha1sum | cut -c1-12)

.PHONY: install llama-server serve test lint typecheck unit clean

$(STAMP): pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) bash scripts/install.sh
	touch $@

install: $(STAMP)

llama-server: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/build-llama-server.sh >/dev/null

serve: install llama-server
	bash scripts/serve.sh

lint: install
	$(BIN)/ruff check gateway router classifiers tests bench
	$(BIN)/ruff format --check gateway router classifiers tests bench
	$(BIN)/mypy

test: install llama-server lint
	$(BIN)/python -m pytest -ra

unit: install
	$(BIN)/python -m pytest -ra tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
