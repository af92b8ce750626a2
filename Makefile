# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := $(wildcard cqrs tests examples benchmarks alembic)
SYSTEM_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint typecheck pytest pytest-system bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy --strict cqrs

# The suite runs on the embedded PostgreSQL 16 (pgserver), then again on the
# system PostgreSQL when one answers on 127.0.0.1:5432.
pytest: $(STAMP)
	env -u CQRS_DATABASE_URL $(BIN)/pytest -q

pytest-system: $(STAMP)
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=postgres', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== system PostgreSQL on 127.0.0.1:5432 =="; \
		CQRS_DATABASE_URL=$(SYSTEM_PG_URL) $(BIN)/pytest -q; \
	else echo "== no PostgreSQL on 127.0.0.1:5432: system run skipped =="; fi

test: lint typecheck pytest pytest-system

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Every workload, 3 interleaved repetitions; writes docs/benchmarks.md and docs/img/benchmarks.png.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --write-docs docs/benchmarks.md

clean:
	rm -rf $(VENV) .cqrs .mypy_cache .pytest_cache .ruff_cache
