"""Which turn starts a replica guesses (store/turn_guesses.py): sessions never seen,
with a cached agent, while the doorbell listens; never for a tenant recently refused;
every memory bounded."""

from __future__ import annotations

from orchestrator_server.core.store_port import NO_SESSION
from orchestrator_server.core.types import (
    Agent,
    AgentSpec,
    MemoryConfig,
    Message,
    Role,
    Run,
    RunStatus,
)
from orchestrator_server.store import followed_windows, turn_guesses
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


def _run(run_id: str, session: str = "s") -> Run:
    return Run(run_id, "a", session, RunStatus.RUNNING, input="q", create_time=5.0, owner="p")


def _answer(run_id: str, sequence: int, text: str = "ok") -> Message:
    return Message(Role.ASSISTANT, text, run_id=run_id, sequence=sequence)


def test_a_window_is_followed_through_a_turn_that_ran_here() -> None:
    made, _, _ = guesses()
    key = ("t", "a", "s")
    made.began(key, _run("r1"), Message(Role.USER, "q", run_id="r1"), NO_SESSION)
    assert made.followed.current(key) is None  # not until its end is recorded
    made.followed.ended("r1", 1, [_answer("r1", 2)])
    start = made.guess(key)
    assert start is not None and start.owner == "p"
    assert (start.revision.create_time, start.revision.count) == (5.0, 2)
    assert [m.content for m in start.messages] == ["q", "ok"]
    made.answered("t", refused=False)
    made.heard_end("t", "a", "s", "r1")  # its own end: still followed
    assert made.guess(key) is not None
    made.heard_end("t", "a", "s", "elsewhere")  # another turn ended: read
    assert made.guess(key) is None


def test_an_end_not_recorded_as_sent_stops_the_following() -> None:
    made, _, _ = guesses()
    key = ("t", "a", "s")
    for stored in (None, [], [_answer("r1", 9)]):  # failed, gone, something in between
        made.began(key, _run("r1"), Message(Role.USER, "q", run_id="r1"), NO_SESSION)
        made.followed.ended("r1", 1, stored)
        assert made.followed.current(key) is None
    made.began(key, _run("r2"), None, NO_SESSION)  # queued: not followed
    made.followed.ended("r2", 1, [_answer("r2", 2)])
    assert made.followed.current(key) is None


def test_followed_windows_are_bounded() -> None:
    made, _, _ = guesses()
    big = "x" * (followed_windows.MAX_FOLLOWED_CHARS // 4)
    for i in range(6):
        key = ("t", "a", f"s{i}")
        made.began(key, _run(f"r{i}", f"s{i}"), Message(Role.USER, "q"), NO_SESSION)
        made.followed.ended(f"r{i}", 1, [_answer(f"r{i}", 2, big[:200_000])])
    kept = [i for i in range(6) if made.followed.current(("t", "a", f"s{i}"))]
    assert kept == list(range(6))  # 200k chars each: within the budget
    for i in range(followed_windows.MAX_IN_FLIGHT + 10):
        made.began(("t", "a", "x"), _run(f"f{i}", "x"), Message(Role.USER, "q"), NO_SESSION)
    assert len(made.followed._in_flight) <= followed_windows.MAX_IN_FLIGHT  # type: ignore[attr-defined]
