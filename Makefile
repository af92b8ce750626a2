# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := $(wildcard cqrs tests examples benchmarks alembic conftest.py mkdocs_hooks.py)
# The system pass uses a database of its own, created when missing.
SYSTEM_PG_DB ?= cqrs_test
SYSTEM_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/$(SYSTEM_PG_DB)
# Two more venvs pin the dependency range's ends: the floors in
# constraints/floor.txt (the lowest versions pyproject.toml allows), and the
# newest releases, upgraded on every run.
FLOOR := .venv-floor
LATEST := .venv-latest
VERSIONS := import importlib.metadata as m; print("  " + ", ".join(f"{n} {m.version(n)}" for n in \
	("sqlalchemy", "alembic", "psycopg", "attrs", "cattrs", "greenlet", "pgserver")))

BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint typecheck docs pytest pytest-system pytest-floor pytest-latest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes cqrs 2>/dev/null || true  # the distribution's old name
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy --strict cqrs

# The documentation site, into site/: README.md as its home page, docs/, and an
# API reference from the public modules' docstrings (mkdocs.yml, mkdocs_hooks.py).
# --strict: a broken link, anchor or reference, or a page left out of the nav,
# fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

# The suite's database is CQRS_TEST_DATABASE_URL, else the embedded PostgreSQL;
# CQRS_DATABASE_URL (a service's real database) never drives it. `make test`
# runs it on the embedded PostgreSQL 16 (pgserver, data in .cqrs/pgdata), then
# on the system PostgreSQL when one answers on 127.0.0.1:5432 (database
# $(SYSTEM_PG_DB)), then on the floor and the newest dependency versions
# (embedded only). On a PostgreSQL of your own:
#   CQRS_TEST_DATABASE_URL=postgresql://user@host/db .venv/bin/pytest
NO_DB_VARS := env -u CQRS_TEST_DATABASE_URL -u CQRS_DATABASE_URL
pytest: $(STAMP)
	$(NO_DB_VARS) $(BIN)/pytest -q

pytest-system: $(STAMP)
	@if $(BIN)/python -c "import psycopg; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=postgres', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== system PostgreSQL on 127.0.0.1:5432, database $(SYSTEM_PG_DB) =="; \
		$(BIN)/python -m cqrs.testing.createdb "$(SYSTEM_PG_URL)" && \
		$(NO_DB_VARS) CQRS_TEST_DATABASE_URL=$(SYSTEM_PG_URL) $(BIN)/pytest -q; \
	else echo "== no PostgreSQL on 127.0.0.1:5432: system run skipped =="; fi

$(FLOOR)/.installed: pyproject.toml constraints/floor.txt
	test -x $(FLOOR)/bin/python || $(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR)/bin/python -m pip install --quiet -c constraints/floor.txt -e '.[dev]'
	touch $@

pytest-floor: $(FLOOR)/.installed
	@echo "== floor versions (constraints/floor.txt), embedded PostgreSQL =="
	@$(FLOOR)/bin/python -c '$(VERSIONS)'
	$(NO_DB_VARS) $(FLOOR)/bin/pytest -q -p no:cacheprovider

pytest-latest:
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	@echo "== newest versions, embedded PostgreSQL =="
	@$(LATEST)/bin/python -c '$(VERSIONS)'
	$(NO_DB_VARS) $(LATEST)/bin/pytest -q -p no:cacheprovider

test: lint typecheck docs pytest pytest-system pytest-floor pytest-latest

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Every workload, 3 interleaved repetitions; writes docs/benchmarks.md and docs/img/benchmarks.png.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --write-docs docs/benchmarks.md

clean:
	rm -rf $(VENV) $(FLOOR) $(LATEST) .cqrs .mypy_cache .pytest_cache .ruff_cache site
