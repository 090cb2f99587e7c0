# The two commands of the quick start: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-sqlite test-postgres lint format worker migration

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Everything, embedded: Redis, migrations, demo data, worker and web. Ctrl-C stops all.
run: install
	$(BIN)/python -m inbox.devstack

## The whole suite on SQLite, then on PostgreSQL (a throwaway cluster, or TEST_DATABASE_URL).
test: test-sqlite test-postgres

test-sqlite: install
	$(BIN)/pytest

test-postgres: install
	@if [ -n "$$TEST_DATABASE_URL" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		INBOX_TEST_DB=postgresql $(BIN)/pytest; \
	elif [ -n "$$INBOX_REQUIRE_POSTGRES" ]; then \
		echo "PostgreSQL is required (INBOX_REQUIRE_POSTGRES) but not installed"; exit 1; \
	else \
		echo "PostgreSQL not installed: the suite ran on SQLite only (CI runs both)"; \
	fi

lint: install
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## A new Alembic revision from the models: make migration m="add sla policies"
migration: install
	$(BIN)/flask --app inbox db migrate -m "$(m)"
