"""Per-tenant allowlists set by the operator: which providers, models and server tools a
tenant's agents may use, and the most tokens one model answer may take.

They are checked when an agent is created or changed and again when it runs, so that an
allowlist the operator narrows applies to agents that already exist.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from .errors import PermissionDeniedError, Reason
from .types import AgentSpec, ModelSpec

# A policy under this name applies to every tenant without one of its own.
EVERY_TENANT = "*"
# (provider name, model name) an agent's model spec resolves to on this server.
EffectiveModel = Callable[[ModelSpec], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """One tenant's allowlists; None allows everything of that kind. Models and tools
    are shell-style patterns (`gpt-4o*`, `files.*`)."""

    providers: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    max_tokens: int | None = None
    tools: tuple[str, ...] | None = None


def _denied(field: str, value: str, why: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{field} '{value[:100]}' {why} by the tenant's allowlist",
        reason=Reason.POLICY_DENIED,
        metadata={"field": field, "value": value[:100]},
    )


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _same_model(spec: ModelSpec) -> tuple[str, str]:
    return spec.provider, spec.model


class TenantPolicies:
    """The operator's allowlists, by tenant."""

    def __init__(
        self, by_tenant: Mapping[str, TenantPolicy], effective_model: EffectiveModel = _same_model
    ) -> None:
        self._by_tenant = dict(by_tenant)
        self._effective_model = effective_model

    def of(self, tenant: str) -> TenantPolicy | None:
        """The tenant's policy, or the one for every tenant, or None."""
        return self._by_tenant.get(tenant) or self._by_tenant.get(EVERY_TENANT)

    def check_agent(self, tenant: str, spec: AgentSpec, prefix: str) -> AgentSpec:
        """The spec as it may run: POLICY_DENIED for a provider, model, max_tokens or tool
        the tenant may not use; with a max_tokens ceiling, an agent that sets none runs
        with the ceiling."""
        policy = self.of(tenant)
        if policy is None:
            return spec
        provider, model = self._effective_model(spec.model)
        if policy.providers is not None and provider not in policy.providers:
            raise _denied(f"{prefix}.model.provider", provider, "is not allowed")
        if policy.models is not None and not _matches(model, policy.models):
            raise _denied(f"{prefix}.model.model", model, "is not allowed")
        for name in spec.tools:
            if policy.tools is not None and not _matches(name, policy.tools):
                raise _denied(f"{prefix}.tools", name, "is not allowed")
        ceiling = policy.max_tokens
        if ceiling is None:
            return spec
        if spec.model.max_tokens is not None and spec.model.max_tokens > ceiling:
            raise _denied(f"{prefix}.model.max_tokens", str(spec.model.max_tokens), "exceeds")
        if spec.model.max_tokens is None:
            return replace(spec, model=replace(spec.model, max_tokens=ceiling))
        return spec


def parse_policies(data: Mapping[str, object]) -> dict[str, TenantPolicy]:
    """Policies from the `[policies.<tenant>]` tables of the configuration."""
    policies = {}
    for tenant, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"policies.{tenant} must be a table")
        unknown = set(table) - {"providers", "models", "max_tokens", "tools"}
        if unknown:
            raise ValueError(f"policies.{tenant}: unknown keys {', '.join(sorted(unknown))}")
        lists = {k: _names(table, k, tenant) for k in ("providers", "models", "tools")}
        ceiling = table.get("max_tokens")
        if ceiling is not None and (not isinstance(ceiling, int) or ceiling < 1):
            raise ValueError(f"policies.{tenant}.max_tokens must be a positive integer")
        policies[tenant] = TenantPolicy(max_tokens=ceiling, **lists)
    return policies


def _names(table: Mapping[str, object], key: str, tenant: str) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"policies.{tenant}.{key} must be a list of strings")
    return tuple(value)
