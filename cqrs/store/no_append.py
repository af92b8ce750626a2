"""Internal: transactions that promise to append no event, so readers need not wait for them.

Readers see only events of transactions older than the read horizon
(``cqrs.store.horizon``): the oldest transaction still running that *may*
append. A projection runner's batch writes its read model and checkpoint, so
it holds a transaction id for a while, and on a busy machine every consumer
then waited for the slowest batch of every other. A batch of a projection that
appends nothing (``Projection(appends=False)``, the default; not a
``ProcessManager``) now says so before its first write (:func:`mark_if`, in the
statement that reads its page):

* the transaction-local setting ``cqrs.no_append`` turns ``on``, and every
  append statement of the store refuses to run while it is (:data:`GUARD`:
  ``AppendInReadModelBatch``, nothing of the statement written);
* ``application_name`` becomes ``~cqrs~no-append~<xid>~ <previous name>``
  until the transaction ends, where every session can read it
  (``pg_stat_activity`` shows ``application_name`` and ``backend_xid`` to every
  role). The horizon skips an id in progress when the session holding it shows
  that name *with that id* (:data:`NOT_APPENDING`).

Why that is safe: the mark is taken only by a transaction without an id yet
(so it has written nothing, events least of all), the id is taken by the
marking statement itself, and the store's appends refuse to run until the
transaction ends. So a marked id never has events, and skipping it lets no
later commit land behind a cursor. A name and an id read from one backend slot
belong together because the name carries the id: a session that ended the
marked transaction and began another shows a new id that the old name does
not match. An id is skipped only on that positive evidence; anything else (a
name a role cannot see, a transaction marked after the reader looked) leaves
the horizon as it was, too low at worst. ``~cqrs~no-append~`` is reserved:
do not give a session an ``application_name`` starting with it.

    >>> GUARD.startswith("CASE WHEN current_setting('cqrs.no_append', true) = 'on'")
    True
"""

from __future__ import annotations

from sqlalchemy import text

from cqrs.errors import AppendInReadModelBatch

NAME_PREFIX = "~cqrs~no-append~"

# A WHERE condition of every append statement, evaluated before anything is
# written: true, or (in a marked transaction) a cast that fails with 22P02 and
# 'cqrs-no-append' in its message. CASE keeps the order: the cast runs only when
# the setting is on (an OR could be evaluated either way round), and it is not a
# constant, so the planner cannot fold it (and fail) at plan time.
GUARD = (
    "CASE WHEN current_setting('cqrs.no_append', true) = 'on' "
    "THEN CAST('cqrs-no-append ' || current_setting('application_name') AS int) IS NULL "
    "ELSE true END"
)


def mark_if(condition: str) -> str:
    """A SQL expression that marks the transaction (see the module's docstring) when
    ``condition`` holds and the transaction has no id yet (a caller's, with writes
    of its own, is left as it is); NULL otherwise. A runner batch puts it in its
    read statement (``cqrs.projections.sql.read_batch``), one round trip less than
    a statement of its own: the first row it holds for marks, later rows find the
    id taken and do nothing."""
    return (
        f"CASE WHEN ({condition}) AND pg_current_xact_id_if_assigned() IS NULL THEN "
        "set_config('cqrs.no_append', 'on', true) || ' ' || "
        f"set_config('application_name', '{NAME_PREFIX}' || pg_current_xact_id()::text || '~ ' "
        "|| current_setting('application_name'), true) END"
    )


# Marks the transaction on its own, as a statement (the tests mark by hand with it).
MARK = text(f"SELECT {mark_if('true')}")

# Transactions in progress that are marked: the id their backend holds (``backend_xid``,
# 32 bits) and the whole id their session's name carries, for the horizon to match
# both against an id of its snapshot. 18 digits at most fit a bigint; a longer number
# (never an xid8 of this century) matches nothing. The regular expression in WHERE
# is what keeps the whole id non-NULL: the horizon reads a NULL one as "any id with
# these low 32 bits" (another database's), which a mark must never mean.
_MARKED_ID = f"'^{NAME_PREFIX}([0-9]{{1,18}})~'"
NOT_APPENDING = (
    "SELECT a.backend_xid::text::bigint, "
    f"substring(a.application_name FROM {_MARKED_ID})::bigint "
    "FROM pg_stat_activity a "
    f"WHERE a.backend_xid IS NOT NULL AND a.application_name LIKE '{NAME_PREFIX}%' "
    f"AND a.application_name ~ {_MARKED_ID}"
)


def refusal(exc: BaseException) -> AppendInReadModelBatch | None:
    """The typed error for an append statement that :data:`GUARD` stopped, else ``None``."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) != "22P02" or "cqrs-no-append" not in str(orig):
        return None
    return AppendInReadModelBatch(
        "an event was appended in a runner batch of a projection that declared it appends "
        "nothing, which other readers of the log do not wait for; nothing was written. Make "
        "it a ProcessManager, or pass appends=True to its Projection(...)"
    )
