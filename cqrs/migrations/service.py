"""Public: what a service's Alembic ``env.py`` uses: settings, metadata, the options
for ``context.configure``, and where a new revision goes.

``cqrs alembic wire`` (``cqrs.migrations.wiring``) writes this into the files
``alembic init`` made; by hand it is, in ``alembic.ini``'s ``[alembic]`` section
(replace the separator line ``alembic init`` wrote, do not add a second one)::

    path_separator = ;            # Alembic 1.16+; before: version_path_separator = ;
    version_locations = %(here)s/alembic/versions;cqrs.migrations:versions
    cqrs_branch = shop            # your revisions' branch label
    cqrs_models = shop.models:Base
    revision_environment = true   # plain `alembic revision` routes too

and in ``env.py``::

    import cqrs.migrations
    target_metadata = cqrs.migrations.target_metadata(config)
    context.configure(connection=connection, target_metadata=target_metadata,
                      **cqrs.migrations.configure_options(config, connection))

``configure_options`` brings the autogenerate hooks, ``transaction_per_migration``
and ``route_revisions``: a new revision lands in the service's own version
folder (the first entry of ``version_locations`` that is not the toolkit's) on
the branch ``cqrs_branch``, never in the installed package, and never meets
"Multiple heads".

The ``events`` layout is read, first match wins, from ``-x cqrs_partitioning=hash``
(also ``cqrs_hash_partitions``, ``cqrs_months_ahead``), ``config.attributes``
(``"cqrs_settings"``: a ``Settings``, or the same keys), the ini file's main
section, then ``Settings.from_env()``.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from alembic.config import Config
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import coerce_resource_to_filename
from sqlalchemy import Connection, MetaData

from cqrs.config import Settings
from cqrs.errors import ConfigurationError
from cqrs.migrations.failures import for_alembic

VERSIONS = str(Path(__file__).with_name("versions"))
"""The directory of the ``cqrs`` branch (also reachable as ``cqrs.migrations:versions``)."""
KEYS = {"cqrs_partitioning": str, "cqrs_hash_partitions": int, "cqrs_months_ahead": int}
BRANCH_OPTION = "cqrs_branch"
"""The ini option naming the service's branch label (``cqrs_branch = shop``)."""
TOOLKIT_BRANCH = "cqrs"
BRANCH_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


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
        raise for_alembic(ConfigurationError)(
            "config.attributes['cqrs_settings'] must be a cqrs Settings"
        )
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
            raise for_alembic(ConfigurationError)(
                f"{key} must be a {kind.__name__}, got {value!r}"
            ) from None
    try:
        return attrs.evolve(settings, **changes)
    except ConfigurationError as exc:  # the ``alembic`` command prints it as FAILED: ...
        raise for_alembic(ConfigurationError)(exc.message) from None


def load_object(spec: str) -> MetaData:
    """``"package.module:attr"`` -> a ``MetaData`` (or a declarative base's metadata)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise for_alembic(ConfigurationError)(
            f"models spec {spec!r} must look like 'package.module:Base'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise for_alembic(ConfigurationError)(f"cannot load models {spec!r}: {exc}") from None
    metadata = obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise for_alembic(ConfigurationError)(
            f"{spec!r} is neither a MetaData nor a declarative base"
        )
    return metadata


def target_metadata(
    config: Config | None = None, service: MetaData | Sequence[MetaData] | None = None
) -> list[MetaData]:
    """The toolkit's ``MetaData`` plus the service's: ``service`` (what ``env.py`` had
    as its ``target_metadata``) and those named by ``-x models=mod:attr`` or the ini
    option ``cqrs_models`` (several separated by spaces or commas), each once."""
    import cqrs.schema

    if config is None:
        from alembic import context

        config = context.config
    spec = x_arguments(config).get("models") or config.get_main_option("cqrs_models") or ""
    given = [service] if isinstance(service, MetaData) else list(service or ())
    found: list[MetaData] = [cqrs.schema.metadata]
    for metadata in [*given, *(load_object(s) for s in spec.replace(",", " ").split())]:
        if not any(metadata is m for m in found):
            found.append(metadata)
    return found


def configure_options(config: Config, connection: Connection | None = None) -> dict[str, Any]:
    """Keywords for a service's ``context.configure``: the autogenerate hooks,
    ``transaction_per_migration`` (some partition operations run outside a
    transaction) and ``process_revision_directives=route_revisions``.

    >>> # not run: in a service's env.py only, where Alembic's context is configured
    >>> context.configure(connection=connection, target_metadata=target_metadata,
    ...                   **configure_options(config, connection))  # doctest: +SKIP
    """
    from cqrs.migrations.compare import autogenerate_options

    return {
        **autogenerate_options(connection),
        "transaction_per_migration": True,
        "process_revision_directives": route_revisions,
    }


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _toolkit_dir(path: str) -> bool:
    return _same_dir(path, VERSIONS) or os.path.realpath(path).startswith(
        os.path.realpath(VERSIONS) + os.sep
    )


def service_versions(script: ScriptDirectory) -> str:
    """The service's own version folder: the first of ``version_locations`` that is not
    the toolkit's (``<script_location>/versions`` when none is set)."""
    locations = script.version_locations or [os.path.join(script.dir, "versions")]
    for location in locations:
        path = os.path.abspath(coerce_resource_to_filename(location))
        if not _toolkit_dir(path):
            return path
    raise for_alembic(ConfigurationError)(
        "version_locations lists only the toolkit's folder (cqrs.migrations:versions); put "
        "your own first, e.g. version_locations = %(here)s/alembic/versions;"
        "cqrs.migrations:versions (or run `cqrs alembic wire`)"
    )


def _branch_labels(script: ScriptDirectory) -> set[str]:
    return {label for rev in script.walk_revisions() for label in rev.branch_labels}


def route_revisions(
    context: MigrationContext, revision: Any, directives: list[MigrationScript]
) -> None:
    """Alembic ``process_revision_directives`` hook: a new revision of the service goes
    on the branch ``cqrs_branch`` in the service's own version folder.

    The first one starts the branch (``head="base"``, ``branch_labels=(branch,)``,
    ``depends_on="cqrs"`` so the toolkit's tables come first); later ones go on
    ``<branch>@head`` whatever other heads exist, so ``alembic revision`` never
    needs ``--head``. An explicit ``--head`` is kept; a revision that would land in
    the installed package's ``cqrs`` branch is refused.
    """
    config = context.config
    if config is None:
        return
    script = ScriptDirectory.from_config(config)
    branch = config.get_main_option(BRANCH_OPTION)
    if branch is not None and not BRANCH_LABEL.match(branch):
        raise for_alembic(ConfigurationError)(
            f"{BRANCH_OPTION} = {branch!r} is not a branch label; use a name like 'shop' "
            "(letters, digits and _, not starting with a digit)"
        )
    for directive in directives:
        if branch and directive.head in (None, "head"):  # None: no --head given
            if branch in _branch_labels(script):
                directive.head = f"{branch}@head"
            else:
                directive.head = "base"
                if directive.branch_label is None:
                    directive.branch_label = branch
                if directive.depends_on is None:
                    directive.depends_on = TOOLKIT_BRANCH
        if directive.version_path is None and directive.head == "base":
            directive.version_path = service_versions(script)
        _refuse_toolkit_target(script, directive, branch)


def _refuse_toolkit_target(
    script: ScriptDirectory, directive: MigrationScript, branch: str | None
) -> None:
    """Refuse a revision that Alembic would write into the toolkit's own branch."""
    if directive.version_path is not None:
        targets = [str(directive.version_path)]
    elif directive.head == "base":
        return
    else:
        try:
            heads = script.get_revisions(directive.head or "head")
        except Exception:  # Alembic reports a bad --head (or "Multiple heads") itself
            return
        targets = [os.path.dirname(rev.path) for rev in heads if rev is not None]
    if any(_toolkit_dir(t) for t in targets):
        if branch:
            hint = f"leave out --head/--version-path: it then goes on {branch}@head"
        else:
            hint = (
                f"set {BRANCH_OPTION} = <your branch> in alembic.ini (or run `cqrs alembic "
                "wire`): it then starts a branch of your own, in your own version folder"
            )
        raise for_alembic(ConfigurationError)(
            f"a new revision on {directive.head or 'head'!r} would be written into the "
            f"installed toolkit's migrations ({VERSIONS}), where the next upgrade of the "
            f"package loses it; {hint}"
        )
