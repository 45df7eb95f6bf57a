"""What each RPC needs: the one table from RPC to permission, which RPCs the audit trail
records, and what resource a request names (for the trail).

A test fails when an RPC of the service has no entry here: a new RPC cannot be served
without deciding who may call it.
"""

from __future__ import annotations

from typing import Any

from ..core.access import Permission

RPC_PERMISSIONS: dict[str, Permission] = {
    "CreateAgent": Permission.WRITE,
    "GetAgent": Permission.READ,
    "ListAgents": Permission.READ,
    "UpdateAgent": Permission.WRITE,
    "DeleteAgent": Permission.WRITE,
    "SetDefaultAgent": Permission.WRITE,
    "GetDefaultAgent": Permission.READ,
    "Run": Permission.RUN,
    "GetRun": Permission.READ,
    "ListRuns": Permission.READ,
    "CancelRun": Permission.RUN,
    "FollowRun": Permission.READ,
    "ListSessions": Permission.READ,
    "ListMessages": Permission.READ,
    "DeleteSession": Permission.RUN,
    "ListTools": Permission.READ,
    "CreateTeam": Permission.WRITE,
    "GetTeam": Permission.READ,
    "ListTeams": Permission.READ,
    "UpdateTeam": Permission.WRITE,
    "DeleteTeam": Permission.WRITE,
    "RunPipeline": Permission.RUN,
    "RunTeam": Permission.RUN,
    "CreateApiKey": Permission.ADMINISTER,
    "ListApiKeys": Permission.ADMINISTER,
    "RevokeApiKey": Permission.ADMINISTER,
    "ListAuditEvents": Permission.ADMINISTER,
    "ListUsage": Permission.ADMINISTER,
    # lf.a2a.v1.A2AService (a2a_setup.py): a task is a run, with the run RPCs' permissions.
    "SendMessage": Permission.RUN,
    "SendStreamingMessage": Permission.RUN,
    "GetTask": Permission.READ,
    "ListTasks": Permission.READ,
    "CancelTask": Permission.RUN,
    "SubscribeToTask": Permission.READ,
    "CreateTaskPushNotificationConfig": Permission.RUN,
    "GetTaskPushNotificationConfig": Permission.READ,
    "ListTaskPushNotificationConfigs": Permission.READ,
    "DeleteTaskPushNotificationConfig": Permission.RUN,
    "GetExtendedAgentCard": Permission.READ,
    # The agent cards' HTTP endpoint (a2a_setup.py).
    "GetAgentCard": Permission.READ,
}

# Calls recorded in the audit trail whatever their outcome (the turns of a Run stream are
# recorded one by one by the run engine). Every other call is recorded when it fails
# authentication or authorization.
AUDITED_RPCS = frozenset(
    {
        "CreateAgent",
        "UpdateAgent",
        "DeleteAgent",
        "SetDefaultAgent",
        "CancelRun",
        "CancelTask",
        "DeleteSession",
        "CreateTeam",
        "UpdateTeam",
        "DeleteTeam",
        "RunPipeline",
        "RunTeam",
        "CreateApiKey",
        "RevokeApiKey",
    }
)

_RESOURCE_FIELDS = (
    ("run_id", "runs"),
    ("id", "runs"),  # an A2A task id is a run id
    ("key_id", "apikeys"),
    ("team_id", "teams"),
    ("agent_id", "agents"),
)


def resource_of(request: Any) -> str:
    """What a request names, e.g. `agents/a1`, `agents/a1/sessions/s1`, `runs/run_..`."""
    for name, nested in (("agent", "agent_id"), ("team", "team_id")):
        inner = getattr(request, name, None)
        if inner is not None and hasattr(inner, nested) and getattr(inner, nested):
            return f"{name}s/{getattr(inner, nested)[:100]}"
    for name, kind in _RESOURCE_FIELDS:
        value = getattr(request, name, "")
        if isinstance(value, str) and value:
            session = getattr(request, "session_id", "")
            suffix = f"/sessions/{session[:100]}" if kind == "agents" and session else ""
            return f"{kind}/{value[:100]}{suffix}"
    return ""
