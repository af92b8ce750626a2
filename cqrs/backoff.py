"""Internal: the one exponential back-off every retry loop of the toolkit waits by.

Attempt ``n`` (1-based) waits ``min(cap, base * 2 ** (n - 1))`` seconds; with
``jitter`` (a ``uniform(a, b)`` draw such as ``random.uniform``) a random time
between 0 and that instead ("full jitter", so competing retriers spread out).
Users: the command bus's ``RetryOnConflict``, the projection runner's failure
policy and reconnect loop, the relay runner and the inbox::

    >>> [delay(n, 0.1, 1.0) for n in (1, 2, 3, 4, 5)]
    [0.1, 0.2, 0.4, 0.8, 1.0]
    >>> delay(10_000, 0.1, 30.0)          # no float overflow however long it failed
    30.0
    >>> import random
    >>> 0 <= delay(3, 0.1, 1.0, jitter=random.Random(7).uniform) <= 0.4
    True
"""

from __future__ import annotations

from collections.abc import Callable

# 2 ** 64 times any sensible base is far past any cap: stop doubling there.
_MAX_DOUBLINGS = 64


def delay(
    attempt: int,
    base: float,
    cap: float,
    jitter: Callable[[float, float], float] | None = None,
) -> float:
    """Seconds to wait before retry ``attempt`` (1-based; below 1 counts as 1)."""
    doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    ceiling = float(min(cap, base * 2**doublings))
    return ceiling if jitter is None else jitter(0, ceiling)
