# twitch-pipeline: `make run` starts everything on the synthetic source; `make test` runs every test tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/twitch-pipeline
JARS := .cache/jars

.PHONY: install system-deps python jars run test unit lint bench up down status clean

# Each part of the project may add its own targets in mk/<part>.mk; a part whose tests do not run under
# the main virtualenv's pytest (Airflow has its own) appends its test target to TEST_EXTRA.
TEST_EXTRA :=
-include mk/*.mk

install: system-deps python jars twitch-cli

# The Twitch CLI, whose mock Helix API the producer tests use (Go module; CGO for its sqlite). Optional:
# where the Go module proxy refuses it, install goes on and that one test is skipped.
TWITCH_CLI_VERSION := v1.1.25
GOBIN_DIR := $(CURDIR)/.cache/go-bin
.PHONY: twitch-cli
twitch-cli: $(GOBIN_DIR)/twitch-cli
$(GOBIN_DIR)/twitch-cli:
	@echo "==> Twitch CLI $(TWITCH_CLI_VERSION) into $(GOBIN_DIR)"
	@CGO_ENABLED=1 GOBIN=$(GOBIN_DIR) go install github.com/twitchdev/twitch-cli@$(TWITCH_CLI_VERSION) \
		|| echo "warning: Twitch CLI not installed; the producer test against its mock API will be skipped"

system-deps:
	@bash scripts/install-system-deps.sh

python: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@echo "==> python virtualenv $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'
	@touch $@

jars: $(JARS)/.resolved
$(JARS)/.resolved: jvm/pom.xml $(wildcard jvm/src/main/java/io/twitchpipeline/*/*.java)
	@echo "==> JVM jars from Maven Central into $(JARS)"
	@rm -rf $(JARS)/kafka $(JARS)/flink
	@mvn -q -B -f jvm/pom.xml package -Diceberg.rest.fixture.skip=true
	@touch $@

# Iceberg's REST catalog server (~200 MB) is only for the tests, so `make run` does not download it.
.PHONY: test-jars
test-jars: $(JARS)/iceberg-rest/.resolved
$(JARS)/iceberg-rest/.resolved: jvm/pom.xml
	@echo "==> Iceberg REST catalog server (tests) into $(JARS)/iceberg-rest"
	@rm -rf $(JARS)/iceberg-rest
	@mvn -q -B -f jvm/pom.xml dependency:copy@iceberg-rest-fixture
	@touch $@

run: install
	@$(CLI) run

test: install test-jars
	@$(PY) -m pytest -ra $(PYTEST_ARGS)
	@for t in $(TEST_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

unit: python
	@$(PY) -m pytest -ra -m "not integration and not e2e" tests/unit

# ruff, and the import-linter contract that keeps the layers pointing one way (pyproject.toml).
lint: python
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/lint-imports

bench: install
	@$(PY) -m benchmarks

up down status: python jars
	@$(CLI) $@

clean:
	-@$(CLI) down 2>/dev/null
	rm -rf .run
