# One command each: set up, run the demo on the embedded local stack, run the tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo up down test lint bench

setup:
	PY=$(PY) bash deploy/setup.sh

demo:
	$(BIN)/auditstream demo

up:
	$(BIN)/auditstream up

down:
	$(BIN)/auditstream down

test:
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench:
	$(BIN)/auditstream bench pipeline
