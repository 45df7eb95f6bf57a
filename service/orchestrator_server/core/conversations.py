"""Conversations (sessions) of agents: listing, reading and clearing them."""

from __future__ import annotations

from .access import sees_owner, visible_owner
from .agents import AgentRegistry
from .errors import AbortedError, NotFoundError, Reason
from .pagination import PageTokens, scope_of, text_bytes
from .runs import RunEngine
from .store_port import Store
from .types import DEFAULT_SESSION_ID, Message, Page, Session
from .validation import check_session_id


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
        await self._agents.get(tenant, agent_id)
        return await self._tokens.fetch_page(
            scope_of("sessions", tenant, agent_id),
            page_size,
            page_token,
            lambda after, limit: self._store.list_sessions(
                tenant,
                agent_id,
                after=str(after[0]) if after else None,
                limit=limit,
                owner=visible_owner(),
            ),
            lambda s: [s.session_id],
        )

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
        session_id = check_session_id(session_id or DEFAULT_SESSION_ID)
        await self._agents.get(tenant, agent_id)
        if not await self._visible(tenant, agent_id, session_id):
            # As for a session that does not exist: an empty conversation.
            return Page([])
        return await self._tokens.fetch_page(
            scope_of("messages", tenant, agent_id, session_id),
            page_size,
            page_token,
            lambda after, limit: self._store.list_messages(
                tenant, agent_id, session_id, after=int(after[0]) if after else 0, limit=limit
            ),
            lambda m: [m.sequence],
            lambda m: text_bytes(m.content, *(c.arguments_json for c in m.tool_calls)),
        )

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
        if not await self._visible(tenant, agent_id, session_id):
            raise NotFoundError(
                f"agent '{agent_id}' has no session '{session_id}'",
                reason=Reason.SESSION_NOT_FOUND,
                metadata={"agent_id": agent_id, "session_id": session_id},
            )
        return await self._store.delete_session(tenant, agent_id, session_id)

    async def _visible(self, tenant: str, agent_id: str, session_id: str) -> bool:
        """Whether the session exists and the caller may see it."""
        owner = await self._store.session_owner(tenant, agent_id, session_id)
        return owner is not None and sees_owner(owner)
