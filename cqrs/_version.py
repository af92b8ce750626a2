"""Internal: the package's version, read from the installed distribution's metadata.

The distribution is ``sqlalchemy-cqrs`` (``pip install cqrs`` is someone else's
2014 package); the import package is ``cqrs``. Running from a source tree that
was never installed answers ``0+unknown`` rather than failing at import.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "sqlalchemy-cqrs"


def installed_version(distribution: str = DISTRIBUTION) -> str:
    """The installed version of ``distribution``, or ``"0+unknown"`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = installed_version()
