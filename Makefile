# The README's two commands are `make demo` and `make test`; each sets everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES_ENV = eval "$$(ops/dev/services env)" && export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL

.PHONY: setup services lint test test-unit test-integration test-faults demo bench down

setup:
	ops/dev/bootstrap $(VENV)

services: setup
	ops/dev/services up

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint services
	$(SERVICES_ENV) && $(VENV)/bin/pytest

test-unit: setup
	$(VENV)/bin/pytest tests/unit

demo: services
	$(SERVICES_ENV) && $(VENV)/bin/store-publish demo

bench: services
	$(SERVICES_ENV) && $(VENV)/bin/store-publish bench --json bench-out/bench.json

down:
	ops/dev/services down
