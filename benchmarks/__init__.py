"""Internal: the performance suite, run on demand with ``make bench`` (``python -m benchmarks``).

Every scenario times one job done through ``cqrs`` and by a hand-written raw
psycopg baseline on the same database and prints the ratio; see
``docs/benchmarks.md``. Add scenarios with ``benchmarks.harness.scenario`` in
a module of this package.
"""
