"""The memory windows of recent sessions, kept between turns by the SQLite store.

Reading a 50-message window costs ~250 µs on the event loop (rows, then Message objects)
on every turn of a conversation, most of it re-reading what the previous turn read. A
window is kept with the revision of the session it was read at: the session row's
`create_time` (a session deleted and started again is another one) and its
`message_count` (messages are numbered 1..count and only ever appended). The next turn
reads that revision (one point read), then only the messages appended since. Deleting a
session or an agent forgets their windows too (one process owns a SQLite file, so every
change passes through this store).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.types import Message
from .sqlite_rows import MESSAGE_COLUMNS, message_from_row

# A read of rows (sql, params) -> rows: on the loop, or in steps that give it back.
Read = Callable[[str, Sequence[Any]], list[Any]]
ReadInSteps = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
_WHERE = "tenant = ? AND agent_id = ? AND session_id = ?"

SessionKey = tuple[str, str, str]  # tenant, agent, session
MAX_SESSIONS = 1024
# A window larger than this (characters of content) is not kept: the cache stays a few
# tens of MB at most, whatever callers store in their messages.
MAX_WINDOW_CHARS = 256 * 1024


@dataclass(slots=True)
class Window:
    """The last `limit` messages of a session at a revision."""

    created: float
    count: int
    limit: int
    messages: list[Message]


class HistoryCache:
    """Windows of recently used sessions, least recently used out first."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._windows: OrderedDict[SessionKey, Window] = OrderedDict()
        self._max = max_sessions

    def peek(self, key: SessionKey) -> Window | None:
        """The kept window of a session, unchecked."""
        return self._windows.get(key)

    def usable(self, key: SessionKey, created: float, count: int, limit: int) -> Window | None:
        """The kept window if the session is the same one, has not lost messages, and
        the window is at least `limit` long (else None: read it whole)."""
        window = self._windows.get(key)
        if window is None:
            return None
        if window.created != created or window.count > count or window.limit < limit:
            del self._windows[key]
            return None
        self._windows.move_to_end(key)
        return window

    def advance(
        self, key: SessionKey, window: Window, count: int, appended: list[Message]
    ) -> list[Message]:
        """The window after `appended` (the messages numbered after its count)."""
        window.messages = (window.messages + appended)[-window.limit :]
        window.count = count
        if sum(len(m.content) for m in window.messages) > MAX_WINDOW_CHARS:
            self._windows.pop(key, None)
        return list(window.messages)

    def keep(
        self, key: SessionKey, created: float, count: int, limit: int, messages: list[Message]
    ) -> None:
        """Keep a window just read whole (unless it is too large to keep)."""
        if sum(len(m.content) for m in messages) > MAX_WINDOW_CHARS:
            self._windows.pop(key, None)
            return
        self._windows[key] = Window(created, count, limit, list(messages))
        self._windows.move_to_end(key)
        while len(self._windows) > self._max:
            self._windows.popitem(last=False)

    def forget(self, tenant: str, agent_id: str, session_id: str | None = None) -> None:
        """Drop the windows of a deleted session (or of every session of an agent)."""
        if session_id is not None:
            self._windows.pop((tenant, agent_id, session_id), None)
            return
        for key in [k for k in self._windows if k[:2] == (tenant, agent_id)]:
            del self._windows[key]


async def read_window(
    cache: HistoryCache, key: SessionKey, limit: int, read: Read, read_in_steps: ReadInSteps
) -> list[Message]:
    """The last `limit` messages of a session, oldest first: the kept window and the
    messages appended since, or the window read whole. Every read stops at the revision
    read first, so a turn committed meanwhile is read next time, not twice."""
    revision = read(f"SELECT create_time, message_count FROM sessions WHERE {_WHERE}", key)
    if not revision:
        return []
    created, count = revision[0]
    window = cache.usable(key, created, count, limit)
    if window is not None and count - window.count <= limit:
        appended: list[Message] = []
        if count > window.count:
            sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {_WHERE} AND seq > ? AND "
            rows = read(sql + "seq <= ? ORDER BY seq", (*key, window.count, count))
            appended = [message_from_row(row) for row in rows]
        return cache.advance(key, window, count, appended)[-limit:]
    rows = await read_in_steps(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {_WHERE} AND seq <= ? "
        "ORDER BY seq DESC LIMIT ?",
        (*key, count, limit),
    )
    messages = [message_from_row(row) for row in reversed(rows)]
    cache.keep(key, created, count, limit, messages)
    return messages
