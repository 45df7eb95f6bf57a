"""The `orchestrator` console script. `orchestrator serve` runs the server; the client
commands (agents, run, chat, ...) live in the Python client package."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .api.a2a_remote import parse_remote_agents
from .bootstrap import add_bootstrap_parser
from .log_format import configure_logging
from .tracing import check_tracing_env


def _add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ... (ORCHESTRATOR_LOG_LEVEL)")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text (default) or json: a JSON object per line with the call's tenant and "
        "principal, the run's id and the caller's trace id (ORCHESTRATOR_LOG_FORMAT)",
    )


def _add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The HTTP endpoints besides the gRPC port."""
    parser.add_argument(
        "--metrics-address",
        help="host:port for Prometheus /metrics (ORCHESTRATOR_METRICS_ADDRESS; off when unset)",
    )
    parser.add_argument(
        "--a2a-address",
        help="host:port serving the agents' A2A cards over HTTP (ORCHESTRATOR_A2A_ADDRESS; "
        "off when unset)",
    )


def add_serve_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `serve` and its flags (each also settable by an ORCHESTRATOR_* variable)."""
    # No abbreviations: a worker's command line is the supervisor's minus --workers, which
    # must be recognisable in it.
    parser = subparsers.add_parser(
        "serve", help="run the orchestrator gRPC server", allow_abbrev=False
    )
    parser.add_argument(
        "--address",
        help="host:port to listen on (ORCHESTRATOR_ADDRESS; "
        "default 127.0.0.1:50051; port 0 picks a free port)",
    )
    _add_store_flags(parser)
    parser.add_argument(
        "--config", help="TOML settings file with [[providers]] (ORCHESTRATOR_CONFIG)"
    )
    parser.add_argument(
        "--dev-model",
        choices=["auto", "on", "off"],
        help="start the bundled development model server: auto = only when "
        "no provider is configured (ORCHESTRATOR_DEV_MODEL)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        dest="grace_seconds",
        help="seconds granted to calls in flight on SIGTERM/SIGINT",
    )
    parser.add_argument(
        "--tls-cert",
        dest="tls_cert_file",
        help="PEM certificate chain: serve TLS (ORCHESTRATOR_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        dest="tls_key_file",
        help="PEM private key of --tls-cert (ORCHESTRATOR_TLS_KEY)",
    )
    parser.add_argument(
        "--tls-client-ca",
        dest="tls_client_ca_file",
        help="PEM CA that client certificates must chain to: mutual TLS "
        "(ORCHESTRATOR_TLS_CLIENT_CA)",
    )
    _add_endpoint_arguments(parser)
    _add_logging_arguments(parser)
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_const",
        const=True,
        help="serve without authentication beyond loopback (only behind a proxy that "
        "authenticates every call; ORCHESTRATOR_ALLOW_UNAUTHENTICATED)",
    )
    parser.set_defaults(handler=run_serve)


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    """--db and --workers (several workers are replicas of one PostgreSQL database)."""
    parser.add_argument(
        "--db",
        help="SQLite file, or a postgresql:// URL for several replicas "
        "(ORCHESTRATOR_DB; default orchestrator.db)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="server processes on this port (SO_REUSEPORT); more than 1 needs PostgreSQL "
        "(ORCHESTRATOR_WORKERS; default 1)",
    )


def run_serve(args: argparse.Namespace) -> int:
    """Load settings and serve until a signal arrives."""
    # Imported here: the client commands share this script and should not pay for
    # importing the server (openai, uvicorn, ...) on every invocation.
    from .config import load_settings
    from .server import serve
    from .store_setup import check_db
    from .supervisor import check_workers, supervise

    try:
        settings = load_settings(
            args.config,
            {
                "address": args.address,
                "db": args.db,
                "dev_model": args.dev_model,
                "grace_seconds": args.grace_seconds,
                "log_level": args.log_level,
                "log_format": args.log_format,
                "metrics_address": args.metrics_address,
                "a2a_address": args.a2a_address,
                "tls_cert_file": args.tls_cert_file,
                "tls_key_file": args.tls_key_file,
                "tls_client_ca_file": args.tls_client_ca_file,
                "allow_unauthenticated": args.allow_unauthenticated,
                # A worker of a supervisor is one process, whatever its command line says.
                "workers": None if os.environ.get("ORCHESTRATOR_WORKER_INDEX") else args.workers,
            },
        )
        check_db(settings.db)
        check_workers(settings)
        check_tracing_env(os.environ)
        parse_remote_agents(settings.a2a_agents)
    except (OSError, ValueError) as error:
        print(f"orchestrator: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        return supervise(settings, sys.argv[1:])
    try:
        import uvloop

        uvloop.run(serve(settings))
    except (OSError, ValueError) as error:
        logging.getLogger("orchestrator").error("cannot start: %s", error)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `orchestrator` console script."""
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(subparsers)
    add_bootstrap_parser(subparsers)
    # The client commands ship with the Python client; a server-only install has `serve`.
    try:
        client_cli = importlib.import_module("orchestrator.cli")
    except Exception as error:
        if (argv or sys.argv[1:])[:1] not in (["serve"], ["create-api-key"]):
            print(f"orchestrator: client commands unavailable: {error}", file=sys.stderr)
    else:
        client_cli.add_client_commands(subparsers)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
