"""Public: the ``cqrs`` command line: a thin shell over plain, typed functions."""
