"""Internal: the scale run: append, read and rebuild figures at 1M events and at N.

    python -m benchmarks.scale --events 10000000 --database-url URL
    python -m benchmarks --scale large --database-url URL      # the same, 10M events
    python -m benchmarks.scale --render                        # docs/scale.md from the JSON

Loads N events (10 a stream, ``events`` hash-partitioned on ``stream_id``)
through the public bulk path (``EventStore.import_streams``) and the same
events into the raw baseline's plain table (``COPY``), then measures at 1M
events and again at N: single-event appends, load + append, ``read_stream``
latency, a ``read_all`` window, a full rebuild of a simple projection (raw,
cqrs, raw again), the peak memory of each phase's process and the bytes an
event takes. ``benchmarks.scale.phases`` holds the phases,
``benchmarks.scale.page`` the page.
"""
