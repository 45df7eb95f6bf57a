"""Settings of the development model server, and the command line that produces them.

The same `DevModelConfig` drives the in-process server (`DevModelServer`) and the
subprocess one (`DevModelProcess` turns it back into CLI flags with `to_argv`), so the
two ways of starting the server cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_RECORDED = 10_000
"""Ring-buffer size for recorded requests and events: bounded so benchmarks don't leak."""


# Names of where the admin token travels (not secrets themselves).
ADMIN_TOKEN_ENV = "DEVMODEL_ADMIN_TOKEN"  # noqa: S105
ADMIN_TOKEN_HEADER = "x-devmodel-admin-token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class DevModelConfig:
    """How a development model server listens, authenticates and answers by default."""

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    latency_ms: float = 0.0
    tokens_per_second: float = 0.0
    default_tokens: int = 0
    models: tuple[str, ...] = ()
    record: bool = True
    max_recorded: int = DEFAULT_MAX_RECORDED
    rules: tuple[dict[str, Any], ...] = field(default=())
    rules_file: str | None = None
    log_level: str = "warning"
    # When set, `/_dev/` (but its health check) answers only requests carrying it in the
    # `x-devmodel-admin-token` header: the recorded prompts are then private to whoever
    # started the server. Passed to a child process in DEVMODEL_ADMIN_TOKEN, not argv.
    admin_token: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        if self.latency_ms < 0 or self.tokens_per_second < 0 or self.default_tokens < 0:
            raise ValueError("latency_ms, tokens_per_second and default_tokens must be >= 0")
        if self.max_recorded <= 0:
            raise ValueError("max_recorded must be > 0")

    def initial_rules(self) -> list[dict[str, Any]]:
        """The rules to load at start-up: those of `rules_file` followed by `rules`."""
        loaded: list[dict[str, Any]] = []
        if self.rules_file is not None:
            loaded.extend(load_rules_file(self.rules_file))
        loaded.extend(self.rules)
        return loaded

    def to_argv(self) -> list[str]:
        """CLI flags reproducing this config (inline `rules` excepted: pass a file for those)."""
        argv = ["--host", self.host, "--port", str(self.port), "--log-level", self.log_level]
        if self.api_key is not None:
            argv += ["--api-key", self.api_key]
        if self.latency_ms:
            argv += ["--latency-ms", repr(self.latency_ms)]
        if self.tokens_per_second:
            argv += ["--tokens-per-second", repr(self.tokens_per_second)]
        if self.default_tokens:
            argv += ["--default-tokens", str(self.default_tokens)]
        if self.models:
            argv += ["--models", ",".join(self.models)]
        if not self.record:
            argv.append("--no-record")
        if self.max_recorded != DEFAULT_MAX_RECORDED:
            argv += ["--max-recorded", str(self.max_recorded)]
        if self.rules_file is not None:
            argv += ["--rules-file", self.rules_file]
        return argv


def load_rules_file(path: str) -> list[dict[str, Any]]:
    """Read rules from a JSON file holding either a list of rules or `{"rules": [...]}`."""
    data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list) or not all(isinstance(rule, dict) for rule in data):
        raise ValueError(f"{path}: expected a JSON list of rules or {{'rules': [...]}}")
    return data


def build_parser() -> argparse.ArgumentParser:
    """The `python -m orchestrator_devmodel` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator_devmodel",
        description="OpenAI-compatible development model server for offline dev, tests "
        "and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 binds an ephemeral port")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before first byte")
    parser.add_argument(
        "--tokens-per-second", type=float, default=0.0, help="chunk pace; 0 = as fast as possible"
    )
    parser.add_argument(
        "--default-tokens",
        type=int,
        default=0,
        help="N>0: answer unmatched requests with exactly N tokens 'tok1 tok2 ... tokN'",
    )
    parser.add_argument(
        "--models", default="", help="comma-separated model names; others get 404 when set"
    )
    parser.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="do not record requests nor connection events (benchmarks)",
    )
    parser.add_argument("--max-recorded", type=int, default=DEFAULT_MAX_RECORDED)
    parser.add_argument("--rules-file", default=None, help="JSON list of rules loaded at start")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> DevModelConfig:
    """Parse CLI flags into a `DevModelConfig` (exits with usage on bad flags)."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    models = tuple(name.strip() for name in ns.models.split(",") if name.strip())
    try:
        return DevModelConfig(
            host=ns.host,
            port=ns.port,
            api_key=ns.api_key,
            latency_ms=ns.latency_ms,
            tokens_per_second=ns.tokens_per_second,
            default_tokens=ns.default_tokens,
            models=models,
            record=ns.record,
            admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None,
            max_recorded=ns.max_recorded,
            rules_file=ns.rules_file,
            log_level=ns.log_level,
        )
    except ValueError as exc:
        parser.error(str(exc))
