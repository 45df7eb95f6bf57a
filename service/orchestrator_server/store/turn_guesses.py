"""Which turn starts a PostgreSQL replica guesses instead of reading them
(Store.guess_turn_start).

A turn's start read (pg_turn_start) is a round trip on the path to the first delta. For
the first turn of a session the replica has never seen, its answer is almost always
known already: the agent as cached, no session, an empty window. Such a start is
guessed, and the run's write checks every part of the guess in the same statement that
stores it (the agent's revision, that the session is new or empty, its owner, the
quota), so a wrong guess never gives a wrong answer: the model request made on it is
dropped unread, and the turn starts again from a read (a changed agent) or asks again
(a session that existed), or is refused as a read would have refused it.

A session is "seen" once this replica read it, wrote a run in it, or heard that a turn
ended in it anywhere (the doorbell's NOTIFY): its turns are read, not guessed. A tenant
whose guessed start was refused (another principal's session, the quota) is read for a
while: a caller cannot make the replica send model requests for refused turns faster
than one per tenant per CAUTIOUS_S.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ..core.memory import window_limit
from ..core.store_port import NO_SESSION, TurnStart
from .agent_cache import AgentCache
from .history_cache import HistoryCache, SessionKey

# Sessions remembered as seen, by the hash of their key (~100 bytes each; two keys of
# one hash only make a session read that could have been guessed). One forgotten is
# guessed once more, which its write corrects.
MAX_SEEN_SESSIONS = 100_000
CAUTIOUS_S = 10.0
MAX_CAUTIOUS_TENANTS = 10_000


class TurnGuesses:
    """What this replica knows of sessions, to guess their first turn's start."""

    def __init__(
        self,
        agents: AgentCache,
        windows: HistoryCache,
        *,
        max_seen: int = MAX_SEEN_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._agents = agents
        self._windows = windows
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._max_seen = max_seen
        self._cautious: dict[str, float] = {}  # tenant -> read its starts until then
        self._clock = clock
        # Whether this replica hears every turn's end (the doorbell listens): without it,
        # a session started elsewhere would look new.
        self.listening: Callable[[], bool] = lambda: False

    def guess(self, key: SessionKey) -> TurnStart | None:
        """The start of a turn in a session never seen here, or None (read it)."""
        tenant, agent_id, _ = key
        if hash(key) in self._seen or self._windows.peek(key) is not None:
            return None
        if not self.listening():
            return None
        until = self._cautious.get(tenant)
        if until is not None:
            if until > self._clock():
                return None
            del self._cautious[tenant]
        agent = self._agents.get((tenant, agent_id))
        if agent is None:
            return None
        return TurnStart(agent, None, NO_SESSION, [], window_limit(agent.spec), guessed=True)

    def saw(self, tenant: str, agent_id: str, session_id: str) -> None:
        """The session exists (or is being written): read its turns' starts."""
        key = hash((tenant, agent_id, session_id))
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)

    def refused(self, tenant: str) -> None:
        """A guessed start of the tenant was refused: read its starts for a while."""
        now = self._clock()
        if len(self._cautious) >= MAX_CAUTIOUS_TENANTS:
            self._cautious = {t: u for t, u in self._cautious.items() if u > now}
            if len(self._cautious) >= MAX_CAUTIOUS_TENANTS:
                # Full of live entries: the oldest goes (dicts keep insertion order).
                del self._cautious[next(iter(self._cautious))]
        self._cautious[tenant] = now + CAUTIOUS_S
