"""Public: see the modules of this package."""
