"""Public: the documentation that ships with every installed copy of the package.

The wheel carries the ``docs/`` folder as ``cqrs/_docs``; a source checkout
(an editable install) reads ``docs/`` beside the package. ``error_section``
answers the section of ``errors.md`` that an error code names, which is what
``cqrs explain CODE`` prints and what every ``CqrsError`` message points at::

    >>> from cqrs.docs import error_section
    >>> error_section("cqrs-stream-not-found").splitlines()[0]
    '## cqrs-stream-not-found'
"""

from __future__ import annotations

import re
from pathlib import Path

from cqrs.errors import ConfigurationError

_PACKAGE = Path(__file__).resolve().parent


def docs_path() -> Path:
    """The folder holding ``errors.md``, ``architecture.md`` and ``guides/``."""
    for candidate in (_PACKAGE / "_docs", _PACKAGE.parent / "docs"):
        if (candidate / "errors.md").is_file():
            return candidate
    raise ConfigurationError(  # pragma: no cover - a broken installation
        f"the documentation is missing from {_PACKAGE}; reinstall sqlalchemy-cqrs"
    )


def error_codes() -> list[str]:
    """Every code that ``errors.md`` documents, in page order."""
    text = (docs_path() / "errors.md").read_text(encoding="utf-8")
    return re.findall(r"^## (\S+)$", text, flags=re.MULTILINE)


def error_section(code: str) -> str:
    """The ``## code`` section of ``errors.md``, heading included."""
    text = (docs_path() / "errors.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(code)}\n.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise ConfigurationError(
            f"no error code {code!r}; the codes are {', '.join(error_codes())}"
        )
    return match.group(0).rstrip() + "\n"
