# The README's two commands are `make demo` and `make test`; each sets everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES_ENV = eval "$$(ops/dev/services env)" && export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL

.PHONY: setup lock services lint contract manifests test test-unit test-integration test-faults demo bench down

setup:
	ops/dev/bootstrap $(VENV)

# requirements.lock: every dependency's exact version with its hashes, for Linux x86_64 and
# Python 3.11 (this machine's kind and the image's); setup, CI and the Dockerfile install
# from it. Refreshed after a change to pyproject.toml, keeping the versions it can;
# `make lock LOCK_FLAGS=--upgrade` moves everything to the newest that pyproject.toml allows.
LOCK_FLAGS ?=
lock: setup
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --custom-compile-command "make lock" $(LOCK_FLAGS) -o requirements.lock

services: setup
	ops/dev/services up

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The contract's documents (docs/contract.md): committed as generated, each valid by its own
# project's tool (the AsyncAPI parser from ops/contract's npm lock, openapi-spec-validator),
# and no breaking change against the last release (schemas/released/: jsoncompat for the
# event schemas, oasdiff, which setup builds into .tools/bin, for the OpenAPI document).
contract: setup
	$(PY) -m ops.contract check
	node ops/contract/validate-asyncapi.mjs schemas/asyncapi.json
	$(VENV)/bin/openapi-spec-validator ops/gateway/openapi.json
	$(PY) -m ops.contract gate

# The Kubernetes manifests (docs/kubernetes.md): base and production overlay rendered by
# kustomize and validated by kubeconform, offline, against Kubernetes' and KEDA's published
# schemas (setup builds both tools at pinned versions and writes the schemas into .tools/).
manifests: setup
	ops/k8s/validate

test: lint contract manifests services
	$(SERVICES_ENV) && $(VENV)/bin/pytest

test-unit: setup
	$(VENV)/bin/pytest tests/unit

demo: services
	$(SERVICES_ENV) && $(VENV)/bin/store-publish demo

bench: services
	$(SERVICES_ENV) && $(VENV)/bin/store-publish bench --json bench-out/bench.json

down:
	ops/dev/services down
