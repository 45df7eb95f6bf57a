"""Which turn starts a replica guesses (store/turn_guesses.py): sessions never seen,
with a cached agent, while the doorbell listens; never for a tenant recently refused;
every memory bounded."""

from __future__ import annotations

from orchestrator_server.core.store_port import NO_SESSION
from orchestrator_server.core.types import (
    Agent,
    AgentSpec,
    MemoryConfig,
)
from orchestrator_server.store import turn_guesses
from orchestrator_server.store.agent_cache import AgentCache
from orchestrator_server.store.history_cache import HistoryCache
from orchestrator_server.store.turn_guesses import CAUTIOUS_S, TurnGuesses


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guesses(max_seen: int = 100) -> tuple[TurnGuesses, HistoryCache, Clock]:
    agents = AgentCache(max_entries=10)
    spec = AgentSpec(memory=MemoryConfig(max_messages=7))
    agents.put(("t", "a"), Agent("a", spec, 1.0, 2.0, 3))
    windows = HistoryCache()
    clock = Clock()
    made = TurnGuesses(agents, windows, max_seen=max_seen, clock=clock)
    made.listening = lambda: True
    return made, windows, clock


def test_a_never_seen_session_of_a_cached_agent_is_guessed() -> None:
    made, _, _ = guesses()
    start = made.guess(("t", "a", "s"))
    assert start is not None and start.guessed
    assert start.agent is not None and start.agent.revision == 3
    assert (start.owner, start.revision, start.messages, start.limit) == (None, NO_SESSION, [], 7)
    assert made.guess(("t", "other-agent", "s")) is None  # not cached: read


def test_seen_and_kept_sessions_are_read() -> None:
    made, windows, _ = guesses()
    made.saw("t", "a", "s")
    assert made.guess(("t", "a", "s")) is None
    windows.keep(("t", "a", "k"), 1.0, 2, 7, [])
    assert made.guess(("t", "a", "k")) is None


def test_nothing_is_guessed_while_the_doorbell_is_deaf() -> None:
    made, _, _ = guesses()
    made.listening = lambda: False
    assert made.guess(("t", "a", "s")) is None


def test_a_refused_tenant_is_read_for_a_while() -> None:
    made, _, clock = guesses()
    assert made.guess(("t", "a", "s")) is not None
    made.answered("t", refused=True)
    assert made.guess(("t", "a", "s")) is None
    clock.now += CAUTIOUS_S + 0.1
    assert made.guess(("t", "a", "s")) is not None


def test_a_tenant_has_one_unanswered_guess_at_a_time() -> None:
    made, _, clock = guesses()
    assert made.guess(("t", "a", "s1")) is not None
    assert made.guess(("t", "a", "s2")) is None  # the first one's write has not answered
    assert made.guess(("u", "a", "s2")) is None  # (not cached for tenant u anyway)
    made.answered("t", refused=False)
    assert made.guess(("t", "a", "s2")) is not None
    clock.now += turn_guesses.UNANSWERED_S + 0.1  # never answered (refused before it)
    assert made.guess(("t", "a", "s3")) is not None


def test_memory_is_bounded() -> None:
    made, _, clock = guesses(max_seen=3)
    for i in range(5):
        made.saw("t", "a", f"s{i}")
    assert made.guess(("t", "a", "s0")) is not None  # forgotten: guessed again
    assert made.guess(("t", "a", "s4")) is None
    limit = turn_guesses.MAX_TIMED_TENANTS
    timers = turn_guesses.TenantTimers(clock)
    for i in range(limit + 5):
        timers.mark(f"tenant{i}", CAUTIOUS_S)
    assert len(timers) == limit and not timers.marked("tenant0")  # the oldest went
    clock.now += CAUTIOUS_S + 1
    timers.mark("late", CAUTIOUS_S)  # expired marks go first when it is full
    assert len(timers) == 1 and timers.marked("late")
