"""What a turn's start reads on PostgreSQL, in one round trip (Store.read_turn_start).

A turn needs its agent (revision-checked, see postgres.py), its session's owner and the
session's memory window before the model request can go out. Read one after another
they were two stages of round trips (~0.6 ms, then ~0.3 ms, on the path to the first
delta); here they are one statement, so one snapshot. The window is read after the
replica's kept window (see pg_history) for as many messages as the agent's memory keeps:
the cached agent says how many; an agent read afresh whose memory keeps more (its first
turn here, or a changed spec) costs a second read, of the window alone.

The window is read before the run's write, which claims the session: the write checks
that the session is still at the revision read (Store.begin_run's `window_at`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..core.memory import window_limit
from ..core.store_port import NO_SESSION, SessionRevision, TurnStart
from .agent_cache import AgentCache
from .history_cache import HistoryCache, SessionKey
from .pg_agents import checked_agent
from .pg_history import Fetch, advanced, read_window_at
from .pg_rows import MESSAGE_COLUMNS, message_from_record

FetchRow = Callable[..., Awaitable[Any]]

_MESSAGE = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
# $4/$5: the cached agent's revision and update time (its spec comes back only if they
# differ); $6: the kept window's message count (0: none); $7: how many messages to read.
_TURN_START = (
    "SELECT a.revision, a.create_time, a.update_time, t.default_agent_id, "
    "CASE WHEN a.revision = $4 AND a.update_time = $5 THEN NULL ELSE a.spec END, "
    "s.owner, s.create_time AS session_time, s.message_count, "
    f"(SELECT array_agg(ROW({_MESSAGE}) ORDER BY m.seq) FROM (SELECT {MESSAGE_COLUMNS} "
    "FROM messages WHERE tenant = s.tenant AND agent_id = s.agent_id AND "
    "session_id = s.session_id AND seq > $6 AND seq <= s.message_count "
    "ORDER BY seq DESC LIMIT $7) m) AS messages, "
    "(SELECT coalesce(sum(u.message_bytes), 0) FROM usage u WHERE u.tenant = $1) AS stored "
    "FROM agents a LEFT JOIN tenants t ON t.tenant = a.tenant "
    "LEFT JOIN sessions s ON s.tenant = a.tenant AND s.agent_id = a.agent_id "
    "AND s.session_id = $3 WHERE a.tenant = $1 AND a.agent_id = $2"
)


async def read_turn_start(
    fetchrow: FetchRow,
    fetch: Fetch,
    agents: AgentCache,
    windows: HistoryCache,
    key: SessionKey,
    fits: Callable[[int], Exception | None],
) -> TurnStart:
    """The agent, the session's owner and its window at one revision (see the module);
    `fits(stored bytes)` is the quota's refusal of the turn, if any."""
    tenant, agent_id, _ = key
    cached = agents.get((tenant, agent_id))
    expected = window_limit(cached.spec if cached else None)
    kept = windows.peek(key)
    after = kept.count if kept is not None and kept.limit >= expected else 0
    size = max(kept.limit, expected) if kept is not None and after else expected
    row = await fetchrow(
        _TURN_START,
        *key,
        cached.revision if cached else 0,
        cached.update_time if cached else 0.0,
        after,
        size,
    )
    if row is None:
        agents.forget((tenant, agent_id))
        return TurnStart(None, None, NO_SESSION, [], 0)
    agent = checked_agent(agents, (tenant, agent_id), cached, row[:5])
    limit = window_limit(agent.spec)
    over_quota = fits(row["stored"])
    if row["session_time"] is None:
        windows.forget(*key)
        return TurnStart(agent, None, NO_SESSION, [], limit, over_quota)
    revision = SessionRevision(row["session_time"], row["message_count"])
    read = [message_from_record(m) for m in row["messages"] or ()]
    if after:
        messages = advanced(windows, key, revision, limit, read)
    elif size >= limit:
        windows.keep(key, revision.create_time, revision.count, size, read)
        messages = read[-limit:]
    else:
        messages = None
    owner: str | None = str(row["owner"])
    if messages is None:
        # The kept window was another session's, or the agent keeps more than guessed:
        # the window alone, at the revision it is read at (the run's write checks the
        # owner again, and this revision).
        revision, messages = await read_window_at(fetch, windows, key, limit)
        owner = None if revision == NO_SESSION else owner
    return TurnStart(agent, owner, revision, messages, limit, over_quota)
