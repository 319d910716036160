# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
#: Test processes side by side (pytest-xdist); each has its own database and Redis database.
TEST_WORKERS ?= 2

.PHONY: install run example test check services browser lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,flink]"
	touch $(STAMP)

install: $(STAMP)

## Publish the sample course on the embedded default (SQLite, no server) and print the cache it built.
run: install
	$(BIN)/courseinfra content publish examples/democourse.json > /dev/null
	$(BIN)/courseinfra cache show democourse

## The worked example: progress, unit metrics, AUDIT events, a TPD report and a progress group of two learners.
example: install
	bash examples/learner-journey.sh

## Every check: lint, types, architecture, then the whole suite on SQLite and on PostgreSQL + Redis.
test: install services browser lint typecheck
	$(BIN)/pytest -q -n $(TEST_WORKERS)

## The fast tier, for every change: lint, types and the suite on the embedded default without the
## tests marked slow (real processes at length, schemathesis). `make test` is the full tier, as CI runs it.
check: install lint typecheck
	COURSEINFRA_TEST_BACKENDS=embedded $(BIN)/pytest -q -n $(TEST_WORKERS) -m "not slow"

services:
	bash scripts/ensure-services.sh

## Debian's chromium for the console's browser tests (Playwright launches it; it cannot download one).
browser:
	bash scripts/ensure-chromium.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

## Only the tests that need no server.
unit: install
	COURSEINFRA_TEST_BACKENDS=embedded $(BIN)/pytest -q

bench: install services
	$(BIN)/python bench/relation_cache.py --markdown

clean:
	rm -rf $(VENV) .courseinfra .mypy_cache .ruff_cache .pytest_cache .hypothesis
