"""The store port: the narrow storage interface the core needs.

Every method takes the tenant first: each row belongs to a tenant, and no query crosses
tenants. A server database (PostgreSQL, for several replicas) implements the same
protocol; nothing above the store knows which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .errors import AbortedError, AlreadyExistsError, NotFoundError, Reason
from .types import Agent, AgentSpec, Message, NewAgent, Run, RunQuery, Session, Team, TeamSpec
from .usage import UsageQuery, UsageRow


class DuplicateRequestError(Exception):
    """A run with the same (tenant, agent, request_id) exists; carries that run."""

    def __init__(self, existing: Run) -> None:
        super().__init__(existing.run_id)
        self.existing = existing


class SessionBusyError(Exception):
    """A run was to start at once in a session that has a run queued or running (found by
    a store shared by several replicas, in the run's write transaction)."""

    def __init__(self, active_run_id: str) -> None:
        super().__init__(active_run_id)
        self.active_run_id = active_run_id


class RunFencedError(Exception):
    """The end of a run could not be recorded because its outcome is recorded already (a
    peer marked it INTERRUPTED when this replica's lease expired)."""


class SessionOwnerError(Exception):
    """A turn was started for a session that another principal owns (found in the run's
    write transaction: another caller took the session first)."""

    def __init__(self, owner: str) -> None:
        super().__init__("session owned by another principal")
        self.owner = owner


@dataclass(frozen=True, slots=True)
class SessionRevision:
    """A session as it was read: its creation time (0.0: no session yet; a session
    deleted and started again is another one) and its message count (messages are only
    ever appended)."""

    create_time: float
    count: int


# The revision of a session that does not exist (yet).
NO_SESSION = SessionRevision(0.0, 0)


@dataclass(frozen=True, slots=True)
class AgentRevision:
    """An agent as a replica cached it: its revision and update time (an agent deleted
    and created again starts at revision 1 again; its update time tells them apart)."""

    revision: int
    update_time: float

    @classmethod
    def of(cls, agent: Agent) -> AgentRevision:
        return cls(agent.revision, agent.update_time)


class AgentChangedError(Exception):
    """begin_run stored nothing: the turn's agent is no longer at the revision its start
    was guessed with (changed or deleted on another replica); start again from a read."""


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What a turn's start reads of a store shared by several replicas, in one read: the
    agent (None: not found), the session's owner (None: no session yet), and the last
    `limit` messages of the session at `revision`, oldest first (`limit` covers the
    agent's memory window as read)."""

    agent: Agent | None
    owner: str | None
    revision: SessionRevision
    messages: list[Message]
    limit: int
    # What check_turn_fits would raise for the turn's input, as read (None: it fits).
    over_quota: Exception | None = None
    # Guessed from what this replica knows, without a read (see guess_turn_start): the
    # run's write checks it all (agent revision, owner, window, quota).
    guessed: bool = False

    def check_fits(self) -> None:
        """QUOTA_EXCEEDED (as check_turn_fits) if the turn's input did not fit."""
        if self.over_quota is not None:
            raise self.over_quota


class WindowMovedError(Exception):
    """begin_run stored the run RUNNING, but its session is no longer at the revision
    the turn's window was read at (a turn elsewhere ended between the read and the
    write): the window must be read again. Carries the run as stored."""

    def __init__(self, stored: Run) -> None:
        super().__init__(stored.run_id)
        self.stored = stored


class MissingAgentsError(Exception):
    """A team names agents that do not exist (checked in the team's write transaction)."""

    def __init__(self, agent_ids: Sequence[str]) -> None:
        super().__init__(", ".join(agent_ids))
        self.agent_ids = tuple(agent_ids)


class Store(Protocol):
    """Persistence of agents, conversations and runs."""

    async def open(self) -> None:
        """Create or migrate the schema and prepare connections."""

    async def close(self) -> None:
        """Flush and release every connection."""

    async def page_token_secret(self) -> bytes:
        """A per-installation secret for signing page tokens (created on first use)."""

    # Agents
    async def create_agent(self, tenant: str, new: NewAgent) -> tuple[Agent, bool]:
        """Insert an agent; (existing, False) under if_not_exists, else AlreadyExistsError."""

    async def get_agent(self, tenant: str, agent_id: str) -> Agent | None:
        """One agent, or None."""

    async def list_agents(
        self, tenant: str, *, after: str | None, limit: int, label_filter: dict[str, str]
    ) -> list[Agent]:
        """Agents in id order after `after`, at most `limit`, carrying every filter label."""

    async def update_agent(
        self, tenant: str, agent_id: str, spec: AgentSpec, *, expected_revision: int | None
    ) -> Agent:
        """Replace an agent's spec; NotFoundError, or AbortedError on a revision mismatch."""

    async def delete_agent(
        self, tenant: str, agent_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete an agent with its sessions and runs; clear the default if it was.

        Raises FailedPreconditionError (AGENT_IN_USE) while a team names the agent.
        """

    async def set_default_agent(self, tenant: str, agent_id: str) -> Agent:
        """Make an agent the tenant's default; NotFoundError if it does not exist."""

    async def default_agent_id(self, tenant: str) -> str | None:
        """The tenant's default agent id, if any."""

    # Conversations
    async def load_history(
        self, tenant: str, agent_id: str, session_id: str, limit: int
    ) -> list[Message]:
        """The last `limit` messages of a session, oldest first."""

    async def list_messages(
        self, tenant: str, agent_id: str, session_id: str, *, after: int, limit: int
    ) -> list[Message]:
        """Messages with sequence > after, oldest first."""

    async def list_sessions(
        self, tenant: str, agent_id: str, *, after: str | None, limit: int, owner: str | None = None
    ) -> list[Session]:
        """Sessions of an agent in id order (only `owner`'s, unless None)."""

    async def session_owner(self, tenant: str, agent_id: str, session_id: str) -> str | None:
        """The principal owning a session, or None when it does not exist."""

    async def read_turn_start(
        self, tenant: str, agent_id: str, session_id: str, text: str
    ) -> TurnStart | None:
        """The agent, its session's owner and the session's memory window, and whether
        a turn with input `text` fits the tenant's stored bytes, in one read of one
        snapshot: what a turn's start reads from a store where every read is a round
        trip. None from a store whose reads are local (the engine then makes them one by
        one, each a few microseconds)."""

    def guess_turn_start(self, tenant: str, agent_id: str, session_id: str) -> TurnStart | None:
        """read_turn_start without a read, for the first turn of a session this replica
        has never seen: its cached agent, no session, an empty window. The turn's write
        (begin_run with `window_at` and `agent_at`) checks the guess, so a wrong one
        costs a dropped model request, never a wrong answer. None when the store reads
        locally, or cannot guess (the agent is not cached, the session was seen, the
        tenant's last guess was refused)."""

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> int:
        """Delete a session's messages and runs; the number of messages deleted."""

    # Runs
    async def check_turn_fits(self, tenant: str, text: str) -> None:
        """QUOTA_EXCEEDED if a turn with input `text` would take the tenant past its
        stored bytes: a cheap early answer, before the model is asked (begin_run checks
        again, in its transaction)."""
        ...

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
        """Insert a run and append its user message in one transaction; create its session
        for `run.owner` if it is new. Returns the run as stored.

        Raises DuplicateRequestError when the run's request_id was used before, and
        SessionOwnerError when the session belongs to another principal than run.owner.
        A store shared by several replicas also keeps one turn per session: a RUNNING run
        for a session with a queued or running run raises SessionBusyError, or, with
        `queue_if_busy`, is stored QUEUED without its user message (single-process stores
        rely on the engine's own locks and store the run as given).

        `window_at` is the revision of a TurnStart this store returned: if the run is
        stored RUNNING and its session is no longer at that revision, the write is kept
        and WindowMovedError (carrying the run) is raised once it is committed.
        `agent_at` is the revision of a guessed TurnStart's agent: if the agent is not
        (or no longer) at it, nothing is stored and AgentChangedError is raised.
        """

    def may_begin_at_once(self, run: Run) -> bool:
        """Whether begin_run_at_once may make this run's first write (it can still find
        the write lock taken); if not, the write goes to begin_run at once."""

    def begin_run_at_once(self, tenant: str, run: Run, user_message: Message | None) -> Run | None:
        """begin_run made without waiting, where the store can (an embedded store whose
        write lock is free and the write small), with begin_run's result and errors;
        None when it cannot (then begin_run). A run's first write is on the path to its
        first delta."""

    async def mark_running(
        self, tenant: str, run_id: str, start_time: float, user_message: Message
    ) -> bool:
        """Move a queued run to running and append its user message, in one transaction;
        False when the run may not run yet (a shared store: another run of the session
        runs, or is queued ahead of it) or is no longer queued."""

    async def finish_run(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        """Append the turn's messages and record the run's outcome (`run` as it ended:
        status, output, usage, error, end_time) in one transaction; return the messages
        as stored (with their sequence numbers). A shared store raises RunFencedError,
        storing nothing, when the run has ended already or its replica's lease expired."""

    async def append_messages(
        self, tenant: str, agent_id: str, session_id: str, messages: Sequence[Message]
    ) -> None:
        """Append messages to a session in one transaction (tool steps of a turn)."""

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        """One run, or None."""

    async def find_run_by_request(self, tenant: str, agent_id: str, request_id: str) -> Run | None:
        """The run an idempotency key created, if any."""

    async def list_runs(self, tenant: str, query: RunQuery) -> list[Run]:
        """Runs newest first, optionally of one agent and session."""

    async def list_usage(self, tenant: str, query: UsageQuery) -> list[UsageRow]:
        """Usage per agent and period (see usage.py), newest period first, then by agent
        id, at most `query.limit` rows."""

    async def interrupt_unfinished_runs(self, end_time: float) -> int:
        """Mark runs left queued or running by a previous process as interrupted (a
        shared store leaves this to its lease reaper: it marks only runs whose replica's
        lease has expired, never those of live peers)."""

    # Teams
    async def create_team(
        self, tenant: str, team_id: str, spec: TeamSpec, *, if_not_exists: bool
    ) -> tuple[Team, bool]:
        """Insert a team; (existing, False) under if_not_exists, else AlreadyExistsError.

        Raises MissingAgentsError when a member or the coordinator does not exist.
        """

    async def get_team(self, tenant: str, team_id: str) -> Team | None:
        """One team, or None."""

    async def list_teams(self, tenant: str, *, after: str | None, limit: int) -> list[Team]:
        """Teams in id order after `after`, at most `limit`."""

    async def update_team(
        self, tenant: str, team_id: str, spec: TeamSpec, *, expected_revision: int | None
    ) -> Team:
        """Replace a team's spec; NotFoundError, AbortedError on a revision mismatch, or
        MissingAgentsError."""

    async def delete_team(
        self, tenant: str, team_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete a team; NotFoundError, or AbortedError on a revision mismatch."""


class Revisioned(Protocol):
    """A stored resource with an optimistic-concurrency revision (agents, teams)."""

    @property
    def revision(self) -> int:
        """The revision; every write bumps it."""

    @property
    def etag(self) -> str:
        """The revision as the etag callers send back."""


R = TypeVar("R", bound=Revisioned)
_NOT_FOUND = {"agent": Reason.AGENT_NOT_FOUND, "team": Reason.TEAM_NOT_FOUND}
_EXISTS = {"agent": Reason.AGENT_ALREADY_EXISTS, "team": Reason.TEAM_ALREADY_EXISTS}


def already_exists(kind: str, resource_id: str) -> AlreadyExistsError:
    """The error for creating an agent or team whose id is taken."""
    return AlreadyExistsError(
        f"{kind} '{resource_id}' already exists",
        reason=_EXISTS[kind],
        metadata={f"{kind}_id": resource_id},
    )


def not_found(kind: str, resource_id: str) -> NotFoundError:
    """The error for an agent or team that does not exist (or that the caller may not
    see)."""
    return NotFoundError(
        f"{kind} '{resource_id}' not found",
        reason=_NOT_FOUND[kind],
        metadata={f"{kind}_id": resource_id},
    )


def require(kind: str, resource_id: str, current: R | None, expected: int | None = None) -> R:
    """`current` if it exists and (when `expected` is given) is at that revision; else the
    NOT_FOUND or ETAG_MISMATCH error every layer raises for it. `kind` is agent or team."""
    key = f"{kind}_id"
    if current is None:
        raise not_found(kind, resource_id)
    if expected is not None and current.revision != expected:
        raise AbortedError(
            f"{kind} '{resource_id}' was changed since etag was read",
            reason=Reason.ETAG_MISMATCH,
            metadata={key: resource_id, "current_etag": current.etag},
        )
    return current
