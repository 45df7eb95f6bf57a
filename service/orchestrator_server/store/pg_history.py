"""The memory windows of recent sessions on PostgreSQL (see history_cache.py): one query
reads the session's revision and the messages after the kept window's (all of a window
when none is kept), in one snapshot. Replicas each keep their own windows; a session
deleted and started again elsewhere has another `create_time`, and one that lost messages
a smaller count, so a window is never reused past a change it did not see."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..core.store_port import NO_SESSION, SessionRevision
from ..core.types import Message
from .history_cache import HistoryCache, SessionKey
from .pg_rows import MESSAGE_COLUMNS, message_from_record

Fetch = Callable[..., Awaitable[list[Any]]]
_COLUMNS = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
# The revision, then the newest `limit` messages after `after` (none: the session has no
# message past it); no row: no session.
_WINDOW = (
    f"SELECT s.create_time AS revision_time, s.message_count AS revision_count, {_COLUMNS} "
    "FROM sessions s LEFT JOIN LATERAL (SELECT * FROM messages WHERE tenant = s.tenant AND "
    "agent_id = s.agent_id AND session_id = s.session_id AND seq > $4 AND "
    "seq <= s.message_count ORDER BY seq DESC LIMIT $5) m ON true "
    "WHERE s.tenant = $1 AND s.agent_id = $2 AND s.session_id = $3"
)


async def read_window(
    fetch: Fetch, cache: HistoryCache, key: SessionKey, limit: int
) -> list[Message]:
    """The last `limit` messages of a session, oldest first."""
    return (await read_window_at(fetch, cache, key, limit))[1]


async def read_window_at(
    fetch: Fetch, cache: HistoryCache, key: SessionKey, limit: int
) -> tuple[SessionRevision, list[Message]]:
    """The session's revision and its last `limit` messages at it, oldest first."""
    kept = cache.peek(key)
    after, size = (kept.count, kept.limit) if kept and kept.limit >= limit else (0, limit)
    # With a kept window, up to its size of the newest messages after it: if more came,
    # those are the whole window, with no gap between the kept part and them.
    read = await _read(fetch, key, after, size)
    if read is None:
        return NO_SESSION, []
    revision, messages = read
    window = advanced(cache, key, revision, limit, messages) if after else None
    if window is not None:
        return revision, window
    if after:  # the kept window was another session's, or ahead of it: read it whole
        read = await _read(fetch, key, 0, limit)
        if read is None:
            return NO_SESSION, []
        revision, messages = read
    cache.keep(key, revision.create_time, revision.count, limit, messages)
    return revision, messages


def advanced(
    cache: HistoryCache,
    key: SessionKey,
    revision: SessionRevision,
    limit: int,
    appended: list[Message],
) -> list[Message] | None:
    """The kept window moved on by the messages appended after it (read up to its size),
    if it is still the session's and at least `limit` long; else None."""
    window = cache.usable(key, revision.create_time, revision.count, limit)
    if window is None:
        return None
    return cache.advance(key, window, revision.count, appended)[-limit:]


async def _read(
    fetch: Fetch, key: SessionKey, after: int, size: int
) -> tuple[SessionRevision, list[Message]] | None:
    """The session's revision and its newest `size` messages after `after`, oldest
    first; None without a session."""
    rows = await fetch(_WINDOW, *key, after, size)
    if not rows:
        return None
    messages = [message_from_record(row[2:]) for row in reversed(rows) if row["seq"] is not None]
    return SessionRevision(rows[0]["revision_time"], rows[0]["revision_count"]), messages
