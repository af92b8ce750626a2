"""Internal: text that is safe to show: passwords masked, control characters escaped.

Every message, ``repr`` and log line that can carry a URL goes through
``mask_url``; every text the command line prints, and every id a log line
carries, goes through ``printable``::

    >>> mask_url("mysql://root:S3cr3t@db/shop")
    'mysql://root:***@db/shop'
    >>> mask_url("cannot reach nats://relay:pa55@broker:4222 (timeout)")
    'cannot reach nats://relay:***@broker:4222 (timeout)'
    >>> printable("order-1\\x1b[2J\\nforged")
    'order-1\\\\x1b[2J\\\\nforged'
"""

from __future__ import annotations

import contextlib
import re

from sqlalchemy import make_url

__all__ = ["MASK", "mask_url", "printable"]

MASK = "***"

# scheme://user:password@ ... The password runs to the LAST "@" before the next
# whitespace: an unencoded "@", "/" or quote in it must not leak its tail (a
# query holding an "@" is masked too much, never too little).
_USER_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"`<>]*:)(?P<password>\S*)@"
)
# NATS takes a token in the user part (nats://TOKEN@host): mask it whole.
_NATS_TOKEN = re.compile(r"(?P<head>\b(?:nats|tls|wss?)://)(?P<token>[^:/@\s'\"`<>]+)@")
# key=value secrets: a libpq conninfo ("host=h password=x"), a URL query (?password=x).
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|sslpassword|token|auth_token)=)(?P<value>[^\s&'\"`<>]+)"
)
_URL_ONLY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it (and ``password=...`` values) masked.

    A ``text`` that is one URL SQLAlchemy can parse is rendered by
    ``make_url(text).render_as_string(hide_password=True)``; any other text (a
    message holding URLs, a URL too broken to parse) is masked by pattern.
    """
    if _URL_ONLY.fullmatch(text):
        with contextlib.suppress(Exception):  # not parseable: the patterns below mask it
            text = make_url(text).render_as_string(hide_password=True)
    text = _USER_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _NATS_TOKEN.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}{MASK}", text)


# C0 and C1 controls (ESC, CR, LF, BEL, CSI...), DEL, line/paragraph separators,
# bidirectional overrides and isolates ("Trojan source"), and lone surrogates
# (undecodable bytes of a surrogate-escaped argv), none of which may reach a
# terminal or a log line as they are.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, keep: str = "") -> str:
    """``str(value)`` with every control character escaped the way Python writes it
    (``\\x1b``, ``\\n``, ``\\u202e``), so it can neither drive a terminal nor forge a
    line of output or of a log. Characters in ``keep`` (say ``"\\n"`` for a text
    that is several lines on purpose) are left as they are."""
    text = str(value)
    if keep:
        return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
    return _UNPRINTABLE.sub(_escape, text)
