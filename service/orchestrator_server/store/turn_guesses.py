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
ended in it anywhere (the doorbell's NOTIFY): its turns are read, not guessed. (Its
window is not followed through this replica's own turns to guess later turns too: a
session deleted elsewhere would be sent to the model once more before its write
refused it.)

A tenant has one guessed start at a time whose write has not answered (the others are
read), and a tenant whose guessed start was refused (a session of another owner, the
quota) is read for CAUTIOUS_S: a caller cannot make the replica send more than one model
request for a refused turn per tenant in that time.
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
# A guess whose write never came (the turn refused before it) stops blocking the
# tenant's next guess after this.
UNANSWERED_S = 1.0
MAX_TIMED_TENANTS = 10_000


class TenantTimers:
    """Tenants marked until a time (bounded: expired marks go first, then the oldest)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._until)

    def mark(self, tenant: str, seconds: float) -> None:
        now = self._clock()
        if len(self._until) >= MAX_TIMED_TENANTS:
            self._until = {t: u for t, u in self._until.items() if u > now}
            if len(self._until) >= MAX_TIMED_TENANTS:
                del self._until[next(iter(self._until))]  # dicts keep insertion order
        self._until[tenant] = now + seconds

    def marked(self, tenant: str) -> bool:
        until = self._until.get(tenant)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._until[tenant]
        return False

    def clear(self, tenant: str) -> None:
        self._until.pop(tenant, None)


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
        self._cautious = TenantTimers(clock)  # refused: read the tenant's starts
        self._unanswered = TenantTimers(clock)  # a guessed write has not answered
        # Whether this replica hears every turn's end (the doorbell listens): without it,
        # a session started elsewhere would look new.
        self.listening: Callable[[], bool] = lambda: False

    def guess(self, key: SessionKey) -> TurnStart | None:
        """The start of a turn in a session never seen here, or None (read it)."""
        tenant, agent_id, _ = key
        if hash(key) in self._seen or self._windows.peek(key) is not None:
            return None
        if not self.listening() or self._cautious.marked(tenant):
            return None
        if self._unanswered.marked(tenant):
            return None
        agent = self._agents.get((tenant, agent_id))
        if agent is None:
            return None
        self._unanswered.mark(tenant, UNANSWERED_S)
        return TurnStart(agent, None, NO_SESSION, [], window_limit(agent.spec), guessed=True)

    def answered(self, tenant: str, *, refused: bool) -> None:
        """A guessed start's write answered (refused: the session had another owner, or
        the quota was used up)."""
        self._unanswered.clear(tenant)
        if refused:
            self._cautious.mark(tenant, CAUTIOUS_S)

    def saw(self, tenant: str, agent_id: str, session_id: str) -> None:
        """The session exists (or is being written): read its turns' starts."""
        key = hash((tenant, agent_id, session_id))
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)
