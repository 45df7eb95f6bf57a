"""Channel construction: the retry service config, keepalive, TLS and call metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.propagate import inject

SERVICE = "orchestrator.v1.OrchestratorService"
TENANT_HEADER = "x-tenant-id"
# The environment variable a client reads its bearer credential (API key or JWT) from
# when none is passed.
TOKEN_ENV = "ORCHESTRATOR_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_ADDRESS = "127.0.0.1:50051"

# Calls that change nothing, or whose repetition ends in the same state, may be sent again
# when the connection failed. CreateAgent is idempotent only with if_not_exists, which the
# service config cannot see, so that case is retried by the client itself
# (`retry_unavailable` in _client.py). Run is a stream and never retried.
IDEMPOTENT_METHODS = (
    "GetAgent",
    "ListAgents",
    "DeleteAgent",
    "SetDefaultAgent",
    "GetDefaultAgent",
    "GetRun",
    "ListRuns",
    "ListSessions",
    "ListMessages",
    "ListTools",
    "GetTeam",
    "ListTeams",
)
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config(retry_unavailable: bool) -> str:
    """The gRPC service config JSON: UNAVAILABLE retries for the idempotent unary calls."""
    if not retry_unavailable:
        return json.dumps({"methodConfig": []})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": SERVICE, "method": m} for m in IDEMPOTENT_METHODS],
                    "retryPolicy": RETRY_POLICY,
                }
            ]
        }
    )


def channel_options(retry_unavailable: bool) -> list[tuple[str, Any]]:
    """Channel arguments: retries and keepalive pings for long idle Run streams."""
    return [
        ("grpc.service_config", service_config(retry_unavailable)),
        ("grpc.enable_retries", 1 if retry_unavailable else 0),
        # The server allows pings every 10 s; 30 s keeps NATs and proxies from dropping an
        # idle chat stream without creating noticeable traffic.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]


def open_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None,
    retry_unavailable: bool,
) -> grpc.aio.Channel:
    """An asyncio channel, TLS when `credentials` is given."""
    options = channel_options(retry_unavailable)
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=options)
    return grpc.aio.insecure_channel(address, options=options)


def call_metadata(
    tenant: str | None,
    metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None,
    token: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """The metadata sent with every call: the caller's pairs plus the tenant header and
    the bearer credential."""
    pairs = list(metadata.items() if isinstance(metadata, Mapping) else metadata or ())
    if tenant is not None:
        pairs = [(k, v) for k, v in pairs if k.lower() != TENANT_HEADER]
        pairs.append((TENANT_HEADER, tenant))
    if token:
        pairs = [(k, v) for k, v in pairs if k.lower() != "authorization"]
        pairs.append(("authorization", f"Bearer {token}"))
    return tuple(pairs)


def with_trace_context(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`metadata` plus the active OpenTelemetry context as the process's propagators
    write it (by default W3C `traceparent`, `tracestate`, `baggage`); unchanged outside
    a span. Context the caller set itself (any of those keys) is kept as it is."""
    carrier: dict[str, str] = {}
    inject(carrier)
    if not carrier or any(key.lower() in carrier for key, _ in metadata):
        return metadata
    return (*metadata, *carrier.items())


def tls_credentials(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> grpc.ChannelCredentials:
    """TLS channel credentials from PEM files: the CA that signed the server (None: the
    system's roots) and, for mutual TLS, the client's certificate chain and key."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("a client certificate needs both its certificate and key files")

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))
