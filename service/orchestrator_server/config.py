"""Server settings: command-line flags over environment variables over a TOML file.

Provider credentials are read from the environment variable each provider names, at
start-up, and are never written to the database, a log line or a response.

    # orchestrator.toml (ORCHESTRATOR_CONFIG or --config)
    default_provider = "openai"
    [[providers]]
    name = "openai"
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    default_model = "gpt-4o-mini"
    max_concurrency = 256
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .api.auth.config import AuthConfig, parse_auth
from .core.policy import TenantPolicy, parse_policies
from .models.provider_config import ProviderConfig

DEV_PROVIDER = "dev"
# Settings read from ORCHESTRATOR_<NAME> as well as the TOML file.
QUOTAS = (
    "max_queued_runs",
    "max_queued_runs_per_tenant",
    "model_tokens_per_minute_per_tenant",
    "max_agents_per_tenant",
    "max_teams_per_tenant",
    "max_stored_bytes_per_tenant",
    "max_agent_calls_per_turn",
    "max_agent_depth",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with."""

    address: str = "127.0.0.1:50051"
    db: str = "orchestrator.db"
    providers: tuple[ProviderConfig, ...] = ()
    default_provider: str = ""
    # auto: start the bundled development model server when no provider is configured.
    dev_model: str = "auto"
    dev_model_latency_ms: float = 0.0
    dev_model_tokens_per_second: float = 0.0
    grace_seconds: float = 10.0
    # The largest request the server accepts, and the largest response it sends: a run
    # record holds an input and an output of up to a million characters each, which must
    # stay readable (clients whose default receive limit is 4 MiB may need to raise it).
    max_message_bytes: int = 4 * 1024 * 1024
    max_response_bytes: int = 16 * 1024 * 1024
    sqlite_synchronous: str = "NORMAL"
    # PostgreSQL (db = postgresql://...): connections per replica, and the lease after
    # which peers mark the runs of a replica that stopped heartbeating INTERRUPTED.
    pg_pool_size: int = 10
    lease_seconds: float = 10.0
    # Server processes on this host (`serve --workers N`, SO_REUSEPORT); more than one
    # needs PostgreSQL (each worker is a replica).
    workers: int = 1
    default_max_model_calls: int = 10
    # Turns a client may start on one Run stream while an earlier one runs; past that the
    # stream ends with TOO_MANY_PENDING_TURNS (a per-stream bound on buffered requests).
    max_pending_turns: int = 32
    # Characters of model text per turn; past it the turn fails with MODEL_OUTPUT_LIMIT.
    max_output_chars: int = 1_000_000
    # Bytes of text per page of ListRuns / ListMessages / ListAgents (a page ends early,
    # with a next token, rather than outgrow what a client accepts by default).
    max_page_bytes: int = 2 * 1024 * 1024
    # Turns in flight (running or queued): server-wide, and per tenant so that one
    # tenant cannot hold every slot (QUOTA_EXCEEDED past either).
    max_runs: int = 5000
    max_runs_per_tenant: int = 1000
    max_streams: int = 10_000
    max_streams_per_tenant: int = 2_000
    # Turns waiting for a busy session (wait_if_busy), server-wide and per tenant.
    max_queued_runs: int = 1000
    max_queued_runs_per_tenant: int = 100
    # Model tokens (prompt + completion) per tenant in any 60 s (QUOTA_EXCEEDED with
    # RetryInfo past it), and what a tenant may keep: agents, teams, bytes of messages.
    model_tokens_per_minute_per_tenant: int = 2_000_000
    max_agents_per_tenant: int = 10_000
    max_teams_per_tenant: int = 1_000
    max_stored_bytes_per_tenant: int = 1024**3
    # Agents as tools: calls caused by one user message (at every depth together), and
    # how deep one agent may call another.
    max_agent_calls_per_turn: int = 64
    max_agent_depth: int = 3
    # MCP servers as [[mcp_servers]] tables (see tools/mcp_config.py for the keys). Only
    # this operator configuration can make the server start a process or reach a URL.
    mcp_servers: tuple[dict[str, Any], ...] = ()
    # Remote A2A agents as [[a2a_agents]] tables (see api/a2a_remote.py for the keys), or
    # ORCHESTRATOR_A2A_AGENTS as a JSON list: agents may ask them as tools a2a__<name>.
    a2a_agents: tuple[dict[str, Any], ...] = ()
    # TLS: PEM files of the server's certificate chain and key; with a client CA, clients
    # must present a certificate it signed (mutual TLS). Without them the port is plaintext.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # host:port of the Prometheus /metrics endpoint; empty = not served.
    metrics_address: str = ""
    # host:port of the HTTP endpoint serving A2A agent cards; empty = not served (the
    # A2A gRPC service is on the gRPC port either way). The gRPC address the cards
    # advertise: a2a_grpc_url, by default the listen address (with its actual port).
    a2a_address: str = ""
    a2a_grpc_url: str = ""
    log_level: str = "INFO"
    log_format: str = "text"  # or "json" (log_format.py)
    # Authentication ([auth], see api/auth/config.py; ORCHESTRATOR_AUTH=on turns it on with
    # API keys). Without it the server must listen on loopback, unless this insecure flag
    # says the operator knows better (a mesh that authenticates in front of it).
    auth: AuthConfig = field(default_factory=AuthConfig)
    allow_unauthenticated: bool = False
    # Per-tenant allowlists ([policies.<tenant>] or [policies."*"]; see core/policy.py).
    policies: Mapping[str, TenantPolicy] = field(default_factory=dict)
    # How long the audit trail keeps records, and whether it also logs them (JSON lines
    # on the orchestrator.audit logger).
    audit_retention_days: float = 90.0
    audit_log: bool = False
    # The journal of run events (FollowRun): how long chunks are kept, how large the
    # journal may grow (the oldest chunks go first), and how often events are written.
    journal_retention_hours: float = 168.0
    journal_max_mb: int = 1024
    journal_flush_ms: int = 50

    def with_providers(self, providers: list[ProviderConfig], default: str) -> Settings:
        """A copy with another provider list (used when the dev model is started)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(providers=tuple(providers), default_provider=default)
        return Settings(**values)


# Environment variables and the settings they set.
_ENV_SETTINGS = {
    "ORCHESTRATOR_ADDRESS": "address",
    "ORCHESTRATOR_DB": "db",
    "ORCHESTRATOR_DEFAULT_PROVIDER": "default_provider",
    "ORCHESTRATOR_DEV_MODEL": "dev_model",
    "ORCHESTRATOR_GRACE_SECONDS": "grace_seconds",
    "ORCHESTRATOR_SQLITE_SYNCHRONOUS": "sqlite_synchronous",
    "ORCHESTRATOR_PG_POOL_SIZE": "pg_pool_size",
    "ORCHESTRATOR_LEASE_SECONDS": "lease_seconds",
    "ORCHESTRATOR_WORKERS": "workers",
    "ORCHESTRATOR_LOG_LEVEL": "log_level",
    "ORCHESTRATOR_LOG_FORMAT": "log_format",
    "ORCHESTRATOR_METRICS_ADDRESS": "metrics_address",
    "ORCHESTRATOR_A2A_ADDRESS": "a2a_address",
    "ORCHESTRATOR_A2A_GRPC_URL": "a2a_grpc_url",
    "ORCHESTRATOR_TLS_CERT": "tls_cert_file",
    "ORCHESTRATOR_TLS_KEY": "tls_key_file",
    "ORCHESTRATOR_TLS_CLIENT_CA": "tls_client_ca_file",
    "ORCHESTRATOR_MAX_PENDING_TURNS": "max_pending_turns",
    "ORCHESTRATOR_MAX_OUTPUT_CHARS": "max_output_chars",
    "ORCHESTRATOR_MAX_PAGE_BYTES": "max_page_bytes",
    "ORCHESTRATOR_MAX_RESPONSE_BYTES": "max_response_bytes",
    "ORCHESTRATOR_MAX_RUNS": "max_runs",
    "ORCHESTRATOR_MAX_RUNS_PER_TENANT": "max_runs_per_tenant",
    "ORCHESTRATOR_MAX_STREAMS": "max_streams",
    "ORCHESTRATOR_MAX_STREAMS_PER_TENANT": "max_streams_per_tenant",
    "ORCHESTRATOR_ALLOW_UNAUTHENTICATED": "allow_unauthenticated",
    "ORCHESTRATOR_AUDIT_RETENTION_DAYS": "audit_retention_days",
    "ORCHESTRATOR_AUDIT_LOG": "audit_log",
    "ORCHESTRATOR_JOURNAL_RETENTION_HOURS": "journal_retention_hours",
    "ORCHESTRATOR_JOURNAL_MAX_MB": "journal_max_mb",
    "ORCHESTRATOR_JOURNAL_FLUSH_MS": "journal_flush_ms",
    **{f"ORCHESTRATOR_{name.upper()}": name for name in QUOTAS},
}

# Integer settings that must be at least 1.
_LIMITS = (
    "pg_pool_size",
    "journal_max_mb",
    "journal_flush_ms",
    "workers",
    "max_pending_turns",
    "max_output_chars",
    "max_page_bytes",
    "max_response_bytes",
    "max_runs",
    "max_runs_per_tenant",
    "max_streams",
    "max_streams_per_tenant",
    *QUOTAS,
)


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in {"on", "off", "true", "false", "1", "0"}:
        raise ValueError(f"{name} must be on or off")
    return text in {"on", "true", "1"}


def _provider(data: dict[str, Any]) -> ProviderConfig:
    known = {f.name for f in fields(ProviderConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown provider settings: {', '.join(sorted(unknown))}")
    if "name" not in data or "base_url" not in data:
        raise ValueError("every provider needs a name and a base_url")
    return ProviderConfig(**data)


def _check_ranges(values: dict[str, Any]) -> None:
    """Integer limits (made ints), bounded durations and TLS file pairs; ValueError."""
    for limit in _LIMITS:
        if limit in values:
            values[limit] = int(values[limit])
            if values[limit] < 1:
                raise ValueError(f"{limit} must be at least 1")
    if values.get("log_format", "text") not in ("text", "json"):
        raise ValueError("log_format must be text or json")
    if values.get("journal_retention_hours", 1.0) <= 0:
        raise ValueError("journal_retention_hours must be positive")
    if values.get("journal_flush_ms", 50) > 10_000:
        raise ValueError("journal_flush_ms must be at most 10000")
    if not 1.0 <= values.get("lease_seconds", 10.0) <= 300.0:
        raise ValueError("lease_seconds must be between 1 and 300")
    if bool(values.get("tls_cert_file")) != bool(values.get("tls_key_file")):
        raise ValueError("TLS needs both a certificate and a key file")
    if values.get("tls_client_ca_file") and not values.get("tls_cert_file"):
        raise ValueError("a TLS client CA (mutual TLS) needs the server's certificate and key")


def load_settings(
    config_path: str | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Settings from the TOML file, then ORCHESTRATOR_* variables, then `overrides`."""
    values: dict[str, Any] = {}
    providers: list[ProviderConfig] = []
    auth_table: dict[str, Any] = {}
    path = config_path or os.environ.get("ORCHESTRATOR_CONFIG")
    if path:
        data = tomllib.loads(Path(path).read_text())
        providers = [_provider(p) for p in data.pop("providers", [])]
        values["mcp_servers"] = tuple(data.pop("mcp_servers", []))
        values["a2a_agents"] = tuple(data.pop("a2a_agents", []))
        auth_table = data.pop("auth", {})
        values["policies"] = parse_policies(data.pop("policies", {}))
        values.update(data)
    for env, key in _ENV_SETTINGS.items():
        if env in os.environ:
            values[key] = os.environ[env]
    if "ORCHESTRATOR_A2A_AGENTS" in os.environ:
        values["a2a_agents"] = tuple(json.loads(os.environ["ORCHESTRATOR_A2A_AGENTS"]))
    if "ORCHESTRATOR_PROVIDERS" in os.environ:
        providers = [_provider(p) for p in json.loads(os.environ["ORCHESTRATOR_PROVIDERS"])]
    if not providers and os.environ.get("OPENAI_API_KEY"):
        providers = [
            ProviderConfig(
                name="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"
            )
        ]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    for name in (
        "grace_seconds",
        "audit_retention_days",
        "lease_seconds",
        "journal_retention_hours",
    ):
        if name in values:
            values[name] = float(values[name])
    for name in ("allow_unauthenticated", "audit_log"):
        if name in values:
            values[name] = _flag(values[name], name)
    auth_env = os.environ.get("ORCHESTRATOR_AUTH", "")
    values["auth"] = parse_auth(auth_table, enabled_by_env=_flag(auth_env or "off", "auth"))
    _check_ranges(values)
    values["providers"] = tuple(providers)
    if not values.get("default_provider") and providers:
        values["default_provider"] = providers[0].name
    return Settings(**values)
