# minik8s — one entry point for setting up, running, testing and measuring.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(HOME)/.minik8s/default
PROTO_SRC := $(wildcard proto/*.proto)

.PHONY: venv up down test test-unit lint bench proto images clean

# The venv is rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q python3-venv && $(PY) -m venv $(VENV); \
	  else echo "python3-venv is missing: run 'sudo apt-get install -y python3-venv'"; exit 1; fi; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(STAMP)

up: venv
	$(BIN)/minictl cluster prereqs --install
	$(BIN)/minictl cluster up --data-dir $(DATA_DIR)

down: venv
	$(BIN)/minictl cluster down --data-dir $(DATA_DIR)

test: venv
	$(BIN)/pytest -q tests

test-unit: venv
	$(BIN)/pytest -q tests/unit

lint: venv
	$(BIN)/ruff check .

# wrk drives the load (a Python client would measure itself); installed here when missing
bench: venv
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get install -y -q wrk; \
	  else echo "wrk is missing: run 'sudo apt-get install -y wrk'"; exit 1; fi; }
	$(BIN)/python -m bench

# Stubs are generated, never hand-edited.
proto: venv
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto $(PROTO_SRC)

# The image of the docker compose cluster (deploy/build-images.sh; BASE=python:3.11-slim-bookworm
# where Docker Hub is reachable, else a local mmdebstrap base), with our own pause and busybox
# images built from Debian packages inside (no registry needed).
images: venv
	PY=$(BIN)/python deploy/build-images.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
