"""An in-memory store: the store port in plain dictionaries, for unit tests of the core
and for experiments. Nothing survives the process; every write is atomic because it
never awaits. The store contract tests (tests/store) hold it to the same behaviour as the
SQLite store.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..core.errors import FailedPreconditionError, Reason
from ..core.memory import window_limit
from ..core.pagination import text_bytes
from ..core.quotas import DEFAULT_QUOTAS, StorageQuotas
from ..core.store_port import (
    NO_SESSION,
    AgentChangedError,
    AgentRevision,
    DuplicateRequestError,
    SessionOwnerError,
    SessionRevision,
    TurnStart,
    WindowMovedError,
    already_exists,
    require,
)
from ..core.types import (
    Agent,
    AgentSpec,
    Message,
    NewAgent,
    Run,
    RunQuery,
    RunStatus,
    Session,
    Team,
)
from .memory_journal import InMemoryJournalStore
from .memory_teams import TeamsInMemory, agents_of
from .memory_usage import UsageLedger

SessionKey = tuple[str, str, str]  # tenant, agent_id, session_id


@dataclass
class _Tenant:
    agents: dict[str, Agent] = field(default_factory=dict)
    default_agent_id: str | None = None
    teams: dict[str, Team] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    message_bytes: int = 0


class InMemoryStore(UsageLedger, TeamsInMemory):
    """The store port without persistence."""

    def __init__(self, quotas: StorageQuotas = DEFAULT_QUOTAS) -> None:
        UsageLedger.__init__(self)
        self._quotas = quotas
        self._tenants: dict[str, _Tenant] = {}
        self._messages: dict[SessionKey, list[Message]] = {}
        self._sessions: dict[SessionKey, Session] = {}
        self._secret = secrets.token_bytes(32)
        self.journal = InMemoryJournalStore(lambda t, run_id: run_id in self._tenant(t).runs)

    def _tenant(self, tenant: str) -> _Tenant:
        return self._tenants.setdefault(tenant, _Tenant())

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release."""

    async def page_token_secret(self) -> bytes:
        """A secret made when the store was."""
        return self._secret

    # -- agents -------------------------------------------------------------------------

    def _agent(self, tenant: str, agent_id: str) -> Agent | None:
        state = self._tenant(tenant)
        agent = state.agents.get(agent_id)
        if agent is None:
            return None
        return replace(agent, is_default=state.default_agent_id == agent_id)

    async def create_agent(self, tenant: str, new: NewAgent) -> tuple[Agent, bool]:
        """Insert an agent, or return the existing one under if_not_exists."""
        existing = self._agent(tenant, new.agent_id)
        if existing is not None:
            if new.if_not_exists:
                return existing, False
            raise already_exists("agent", new.agent_id)
        self._quotas.check_count(tenant, "agents", len(self._tenant(tenant).agents))
        now = time.time()
        self._tenant(tenant).agents[new.agent_id] = Agent(new.agent_id, new.spec, now, now, 1)
        if new.set_as_default:
            self._tenant(tenant).default_agent_id = new.agent_id
        return Agent(new.agent_id, new.spec, now, now, 1, is_default=new.set_as_default), True

    async def get_agent(self, tenant: str, agent_id: str) -> Agent | None:
        """One agent, or None."""
        return self._agent(tenant, agent_id)

    async def list_agents(
        self, tenant: str, *, after: str | None, limit: int, label_filter: dict[str, str]
    ) -> list[Agent]:
        """Agents in id order after `after` carrying every filter label."""
        ids = sorted(i for i in self._tenant(tenant).agents if after is None or i > after)
        agents = [self._agent(tenant, i) for i in ids]
        matching = [
            a
            for a in agents
            if a is not None and all(a.spec.labels.get(k) == v for k, v in label_filter.items())
        ]
        return matching[:limit]

    async def update_agent(
        self, tenant: str, agent_id: str, spec: AgentSpec, *, expected_revision: int | None
    ) -> Agent:
        """Replace the spec, bumping the revision."""
        current = require("agent", agent_id, self._agent(tenant, agent_id), expected_revision)
        updated = replace(
            current, spec=spec, update_time=time.time(), revision=current.revision + 1
        )
        self._tenant(tenant).agents[agent_id] = updated
        return updated

    async def delete_agent(
        self, tenant: str, agent_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete the agent with its sessions and runs; clear it as default."""
        require("agent", agent_id, self._agent(tenant, agent_id), expected_revision)
        state = self._tenant(tenant)
        team_id = next(
            (t for t in sorted(state.teams) if agent_id in agents_of(state.teams[t].spec)), None
        )
        if team_id is not None:
            raise FailedPreconditionError(
                f"agent '{agent_id}' is used by team '{team_id}'; remove it from the team first",
                reason=Reason.AGENT_IN_USE,
                metadata={"agent_id": agent_id, "team_id": team_id},
            )
        for key in [k for k in self._sessions if k[:2] == (tenant, agent_id)]:
            self._drop_session(key)
        self._drop_runs(tenant, lambda r: r.agent_id == agent_id)
        del state.agents[agent_id]
        if state.default_agent_id == agent_id:
            state.default_agent_id = None

    async def set_default_agent(self, tenant: str, agent_id: str) -> Agent:
        """Make the agent its tenant's default."""
        require("agent", agent_id, self._agent(tenant, agent_id), None)
        self._tenant(tenant).default_agent_id = agent_id
        agent = self._agent(tenant, agent_id)
        assert agent is not None
        return agent

    async def default_agent_id(self, tenant: str) -> str | None:
        """The tenant's default agent id, if any."""
        return self._tenant(tenant).default_agent_id

    # -- conversations ------------------------------------------------------------------

    async def load_history(
        self, tenant: str, agent_id: str, session_id: str, limit: int
    ) -> list[Message]:
        """The last `limit` messages, oldest first."""
        messages = self._messages.get((tenant, agent_id, session_id), [])
        return messages[-limit:] if limit > 0 else []

    async def list_messages(
        self, tenant: str, agent_id: str, session_id: str, *, after: int, limit: int
    ) -> list[Message]:
        """Messages with sequence > after, oldest first."""
        messages = self._messages.get((tenant, agent_id, session_id), [])
        return [m for m in messages if m.sequence > after][:limit]

    async def list_sessions(
        self, tenant: str, agent_id: str, *, after: str | None, limit: int, owner: str | None = None
    ) -> list[Session]:
        """Sessions of an agent in id order (only `owner`'s, unless None)."""
        keys = sorted(
            k
            for k, session in self._sessions.items()
            if k[:2] == (tenant, agent_id)
            and k[2] > (after or "")
            and (owner is None or session.owner == owner)
        )
        return [self._sessions[k] for k in keys[:limit]]

    async def session_owner(self, tenant: str, agent_id: str, session_id: str) -> str | None:
        """The principal owning a session, or None when it does not exist."""
        session = self._sessions.get((tenant, agent_id, session_id))
        return None if session is None else session.owner

    async def read_turn_start(
        self, tenant: str, agent_id: str, session_id: str, text: str
    ) -> TurnStart:
        """The agent, the session's owner, its window and the quota's answer (as a
        shared store reads them: the engine uses this over a store said to be shared)."""
        agent = self._agent(tenant, agent_id)
        limit = window_limit(agent.spec) if agent is not None else 0
        over = self._quotas.turn_refusal(tenant, self._tenant(tenant).message_bytes, text)
        key = (tenant, agent_id, session_id)
        session = self._sessions.get(key) if agent is not None else None
        if agent is None or session is None:
            return TurnStart(agent, None, NO_SESSION, [], limit, over)
        messages = self._messages.get(key, [])[-limit:]
        return TurnStart(agent, session.owner, self._revision(key), messages, limit, over)

    def guess_turn_start(self, tenant: str, agent_id: str, session_id: str) -> None:
        """None: every read here is local."""

    def _revision(self, key: SessionKey) -> SessionRevision:
        session = self._sessions.get(key)
        if session is None:
            return NO_SESSION
        return SessionRevision(session.create_time, len(self._messages.get(key, [])))

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> int:
        """Delete a session's messages and runs; how many messages went."""
        self._drop_runs(tenant, lambda r: (r.agent_id, r.session_id) == (agent_id, session_id))
        return self._drop_session((tenant, agent_id, session_id))

    def _drop_runs(self, tenant: str, dropped: Callable[[Run], bool]) -> None:
        state = self._tenant(tenant)
        gone = [r for r in state.runs.values() if dropped(r)]
        state.message_bytes -= sum(_run_bytes(r) for r in gone)
        for run in gone:
            del state.runs[run.run_id]
        self.journal.forget(tenant, lambda run_id: run_id in state.runs)

    def _drop_session(self, key: SessionKey) -> int:
        self._sessions.pop(key, None)
        dropped = self._messages.pop(key, [])
        self._tenant(key[0]).message_bytes -= _stored_bytes(dropped)
        return len(dropped)

    def _append(self, key: SessionKey, messages: Sequence[Message], now: float) -> list[Message]:
        # A turn that ends after its agent was deleted must not leave orphans behind.
        if not messages or self._agent(key[0], key[1]) is None:
            return []
        history = self._messages.setdefault(key, [])
        count = len(history)
        stored = [
            replace(m, sequence=count + i + 1, create_time=now) for i, m in enumerate(messages)
        ]
        history.extend(stored)
        self._tenant(key[0]).message_bytes += _stored_bytes(stored)
        session = self._sessions.get(key)
        created, owner = (session.create_time, session.owner) if session else (now, "")
        self._sessions[key] = Session(key[1], key[2], len(history), created, now, owner)
        return stored

    async def append_messages(
        self, tenant: str, agent_id: str, session_id: str, messages: Sequence[Message]
    ) -> None:
        """Append messages to a session."""
        self._append((tenant, agent_id, session_id), messages, time.time())

    # -- runs ---------------------------------------------------------------------------

    async def check_turn_fits(self, tenant: str, text: str) -> None:
        """QUOTA_EXCEEDED if the turn's input would take the tenant past its bytes."""
        self._quotas.check_turn(tenant, self._tenant(tenant).message_bytes, text)

    async def begin_run(
        self,
        tenant: str,
        run: Run,
        user_message: Message | None,
        *,
        queue_if_busy: bool = False,
        window_at: SessionRevision | None = None,
        agent_at: AgentRevision | None = None,
    ) -> Run:
        """Insert a run and its user message; DuplicateRequestError for a used key (one
        process: the engine's locks keep one turn per session)."""
        if agent_at is not None:
            agent = self._agent(tenant, run.agent_id)
            if agent is None or AgentRevision.of(agent) != agent_at:
                raise AgentChangedError(run.agent_id)
        if run.request_id:
            previous = await self.find_run_by_request(tenant, run.agent_id, run.request_id)
            if previous is not None:
                raise DuplicateRequestError(previous)
        await self.check_turn_fits(tenant, run.input)
        key = (tenant, run.agent_id, run.session_id)
        session = self._sessions.get(key)
        if session is not None and session.owner != run.owner:
            raise SessionOwnerError(session.owner)
        if session is None and self._agent(tenant, run.agent_id) is not None:
            self._sessions[key] = Session(
                run.agent_id, run.session_id, 0, run.create_time, run.create_time, run.owner
            )
        moved = window_at is not None and _moved(window_at, self._revision(key))
        state = self._tenant(tenant)
        state.message_bytes += _run_bytes(run)
        state.runs[run.run_id] = run
        if user_message is not None:
            self._append(key, [user_message], run.create_time)
        if moved and run.status is RunStatus.RUNNING:
            raise WindowMovedError(run)
        return run

    def may_begin_at_once(self, run: Run) -> bool:
        """Never (see begin_run_at_once)."""
        return False

    def begin_run_at_once(self, tenant: str, run: Run, user_message: Message | None) -> Run | None:
        """Not here: the in-memory store's writes are awaited like a database's."""
        return None

    async def mark_running(
        self, tenant: str, run_id: str, start_time: float, user_message: Message
    ) -> bool:
        """Move a queued run to running and append its user message."""
        run = self._tenant(tenant).runs.get(run_id)
        if run is None or run.status is not RunStatus.QUEUED:
            return False
        self._tenant(tenant).runs[run_id] = replace(
            run, status=RunStatus.RUNNING, start_time=start_time
        )
        self._append((tenant, run.agent_id, run.session_id), [user_message], start_time)
        return True

    async def finish_run(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        """Append the turn's messages and record its outcome."""
        key = (tenant, run.agent_id, run.session_id)
        stored = self._append(key, messages, run.end_time or time.time())
        runs = self._tenant(tenant).runs
        before = runs.get(run.run_id)
        if before is not None:
            self._tenant(tenant).message_bytes += _run_bytes(run) - _run_bytes(before)
            start = before.start_time if before.start_time is not None else run.end_time
            runs[run.run_id] = replace(run, start_time=start)
        self.record_usage(tenant, run, run.end_time or time.time())
        return stored

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        """One run, or None."""
        return self._tenant(tenant).runs.get(run_id)

    async def find_run_by_request(self, tenant: str, agent_id: str, request_id: str) -> Run | None:
        """The run an idempotency key created, if any."""
        runs = self._tenant(tenant).runs.values()
        return next((r for r in runs if (r.agent_id, r.request_id) == (agent_id, request_id)), None)

    async def list_runs(self, tenant: str, query: RunQuery) -> list[Run]:
        """Runs newest first, optionally of one agent and session."""
        runs = [
            r
            for r in self._tenant(tenant).runs.values()
            if (not query.agent_id or r.agent_id == query.agent_id)
            and (not query.session_id or r.session_id == query.session_id)
            and (query.owner is None or r.owner == query.owner)
            and (query.after is None or (r.create_time, r.run_id) < query.after)
        ]
        runs.sort(key=lambda r: (r.create_time, r.run_id), reverse=True)
        return runs[: query.limit]

    async def interrupt_unfinished_runs(self, end_time: float) -> int:
        """Mark every queued or running run interrupted."""
        count = 0
        for state in self._tenants.values():
            for run_id, run in state.runs.items():
                if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
                    state.runs[run_id] = replace(
                        run,
                        status=RunStatus.INTERRUPTED,
                        error_reason=Reason.RUN_INTERRUPTED,
                        error_message="the server stopped while the run was in progress",
                        end_time=end_time,
                    )
                    count += 1
        return count


def _stored_bytes(messages: Sequence[Message]) -> int:
    """Messages' contents and tool-call arguments, in UTF-8 bytes."""
    return sum(text_bytes(m.content, *(c.arguments_json for c in m.tool_calls)) for m in messages)


def _run_bytes(run: Run) -> int:
    """A run record's input and output, in UTF-8 bytes."""
    return text_bytes(run.input, run.output or "")


def _moved(read: SessionRevision, now: SessionRevision) -> bool:
    """Whether a session is no longer at the revision a window was read at (a window
    read before the session existed fits a session created empty since)."""
    if read.create_time == 0.0:
        return now.count != 0
    return read != now
