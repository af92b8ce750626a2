"""Public: helpers for a service's Alembic ``env.py``: settings, metadata, the branch.

Adding the toolkit's branch to a service takes two lines. In ``alembic.ini``::

    path_separator = space
    version_locations = %(here)s/alembic/versions cqrs.migrations:versions

and in ``env.py``, the autogenerate hooks::

    context.configure(connection=connection, target_metadata=target_metadata(config),
                      **cqrs.migrations.autogenerate_options(connection))

The ``events`` layout is read, first match wins, from ``-x cqrs_partitioning=hash``
(also ``cqrs_hash_partitions``, ``cqrs_months_ahead``), ``config.attributes``
(``"cqrs_settings"``: a ``Settings``, or the same keys), the ini file's main
section, then ``Settings.from_env()``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import attrs
from alembic.config import Config
from sqlalchemy import MetaData

from cqrs.config import Settings
from cqrs.errors import ConfigurationError

VERSIONS = str(Path(__file__).with_name("versions"))
"""The directory of the ``cqrs`` branch (also reachable as ``cqrs.migrations:versions``)."""
KEYS = {"cqrs_partitioning": str, "cqrs_hash_partitions": int, "cqrs_months_ahead": int}


def x_arguments(config: Config) -> dict[str, str]:
    """The ``-x key=value`` arguments given to the ``alembic`` command."""
    raw = getattr(config.cmd_opts, "x", None) or []
    return dict(item.split("=", 1) for item in raw if "=" in item)


def migration_settings(config: Config | None = None) -> Settings:
    """The ``Settings`` a migration should follow (see the module doc for the order).

    >>> migration_settings(Config(attributes={"cqrs_partitioning": "hash"})).partitioning
    'hash'
    """
    if config is None:
        from alembic import context

        config = context.config
    base = config.attributes.get("cqrs_settings")
    if base is not None and not isinstance(base, Settings):
        raise ConfigurationError("config.attributes['cqrs_settings'] must be a cqrs Settings")
    settings = base or Settings.from_env()
    xargs = x_arguments(config)
    changes: dict[str, Any] = {}
    for key, kind in KEYS.items():
        value = xargs.get(key, config.attributes.get(key, config.get_main_option(key)))
        if value is None:
            continue
        try:
            changes[key.removeprefix("cqrs_")] = kind(value)
        except ValueError:
            raise ConfigurationError(f"{key} must be a {kind.__name__}, got {value!r}") from None
    return attrs.evolve(settings, **changes)


def load_object(spec: str) -> MetaData:
    """``"package.module:attr"`` -> a ``MetaData`` (or a declarative base's metadata)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"models spec {spec!r} must look like 'package.module:Base'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load models {spec!r}: {exc}") from None
    metadata = obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise ConfigurationError(f"{spec!r} is neither a MetaData nor a declarative base")
    return metadata


def target_metadata(config: Config | None = None) -> list[MetaData]:
    """The toolkit's ``MetaData`` plus the service's, named by ``-x models=mod:attr``
    or the ini option ``cqrs_models`` (several separated by spaces or commas)."""
    import cqrs.schema

    if config is None:
        from alembic import context

        config = context.config
    spec = x_arguments(config).get("models") or config.get_main_option("cqrs_models") or ""
    extra = [load_object(s) for s in spec.replace(",", " ").split()]
    return [cqrs.schema.metadata, *extra]
