"""Conversations (sessions) of agents: listing, reading and clearing them."""

from __future__ import annotations

from .agents import AgentRegistry
from .errors import AbortedError, NotFoundError, Reason
from .pagination import PageTokens
from .runs import RunEngine
from .store_port import Store
from .types import DEFAULT_SESSION_ID, Message, Page, Session
from .validation import check_page_size, check_session_id


class Conversations:
    """Read and clear the stored sessions of agents."""

    def __init__(
        self, store: Store, agents: AgentRegistry, runs: RunEngine, tokens: PageTokens
    ) -> None:
        self._store = store
        self._agents = agents
        self._runs = runs
        self._tokens = tokens

    async def list_sessions(
        self, tenant: str, agent_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> Page[Session]:
        """An agent's sessions in id order."""
        limit = check_page_size(page_size)
        await self._agents.get(tenant, agent_id)
        scope = f"sessions:{tenant}:{agent_id}"
        key = self._tokens.parse(scope, page_token)
        sessions = await self._store.list_sessions(
            tenant, agent_id, after=str(key[0]) if key else None, limit=limit + 1
        )
        return self._tokens.page(scope, sessions, limit, lambda s: [s.session_id])

    async def list_messages(
        self,
        tenant: str,
        agent_id: str,
        session_id: str = "",
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Message]:
        """A session's messages, oldest first."""
        limit = check_page_size(page_size)
        session_id = check_session_id(session_id or DEFAULT_SESSION_ID)
        await self._agents.get(tenant, agent_id)
        scope = f"messages:{tenant}:{agent_id}:{session_id}"
        key = self._tokens.parse(scope, page_token)
        after = int(key[0]) if key else 0
        messages = await self._store.list_messages(
            tenant, agent_id, session_id, after=after, limit=limit + 1
        )
        return self._tokens.page(scope, messages, limit, lambda m: [m.sequence])

    async def delete_session(self, tenant: str, agent_id: str, session_id: str = "") -> int:
        """Clear a conversation; SESSION_BUSY while it runs a turn."""
        session_id = check_session_id(session_id or DEFAULT_SESSION_ID)
        await self._agents.get(tenant, agent_id)
        active = self._runs.busy_run(tenant, agent_id, session_id)
        if active:
            raise AbortedError(
                "the session is running a turn; cancel it or wait",
                reason=Reason.SESSION_BUSY,
                metadata={"session_id": session_id, "active_run_id": active},
            )
        sessions = await self._store.list_sessions(
            tenant, agent_id, after=_before(session_id), limit=1
        )
        if not sessions or sessions[0].session_id != session_id:
            raise NotFoundError(
                f"agent '{agent_id}' has no session '{session_id}'",
                reason=Reason.SESSION_NOT_FOUND,
                metadata={"agent_id": agent_id, "session_id": session_id},
            )
        return await self._store.delete_session(tenant, agent_id, session_id)


def _before(session_id: str) -> str:
    """The greatest string ordering before `session_id` for a keyset probe."""
    return session_id[:-1] + chr(ord(session_id[-1]) - 1) + "\U0010ffff"
