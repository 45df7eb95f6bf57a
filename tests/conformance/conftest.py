"""One development model server and one orchestrator subprocess for the conformance tests.

Session-scoped: the conformance runners (each in its own tenant with its own agent-id
prefix) and the client examples share them. The dev model starts with the rules the
scenario asks the harness for (`devmodel_rules` in conformance/scenario.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
import pytest
from grpc_health.v1 import health_pb2

from orchestrator_devmodel import DevModelConfig, DevModelProcess
from orchestrator_devmodel.net import free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "conformance" / "scenario.json"


@dataclass
class Servers:
    """Where the shared servers listen."""

    address: str
    model_url: str
    log: Path
    # The API key (admin) of each tenant the runners and examples use: authentication is
    # on, as in production.
    tokens: dict[str, str]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _wait_serving(address: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"orchestrator exited with status {proc.returncode}")
            try:
                reply = check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("orchestrator did not become SERVING")
            # Another process's health endpoint: polling is all there is.
            time.sleep(0.05)


# The runners' tenants (conformance-<prefix>) and the examples' ("default").
TENANTS = ("conformance-py", "conformance-go", "conformance-ts", "conformance-curl", "default")


def _admin_key(db: str, tenant: str, env: dict[str, str]) -> str:
    """An admin API key of `tenant`, made the operator's way (`create-api-key`)."""
    command = [sys.executable, "-m", "orchestrator_server.cli", "create-api-key"]
    done = subprocess.run(
        [*command, "--db", db, "--tenant", tenant, "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def _serve(address: str, db: str, env: dict[str, str], sink: IO[bytes]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "orchestrator_server.cli", "serve"]
    return subprocess.Popen(
        [*command, "--address", address, "--db", db, "--grace", "2"],
        env=env,
        stdout=sink,
        stderr=subprocess.STDOUT,
    )


@contextmanager
def start_servers(tmp: Path, db: str = "", replicas: int = 1) -> Iterator[Servers]:
    """`orchestrator serve` on free ports (`replicas` processes on one database: a fresh
    SQLite file unless `db` names one), using one dev model process. With several, the
    address is their comma-separated list (the runners spread calls over them)."""
    rules = tuple(json.loads(SCENARIO.read_text())["devmodel_rules"])
    with DevModelProcess(DevModelConfig(rules=rules)) as model:
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
        env = dict(os.environ)
        env.pop("OPENAI_API_KEY", None)
        env["ORCHESTRATOR_DEV_MODEL"] = "off"
        env["ORCHESTRATOR_PROVIDERS"] = json.dumps(
            [{"name": "dev", "base_url": model.base_url, "default_model": "dev-echo"}]
        )
        env["ORCHESTRATOR_AUTH"] = "on"
        db = db or str(tmp / "orchestrator.db")
        tokens = {tenant: _admin_key(db, tenant, env) for tenant in TENANTS}
        log = tmp / "orchestrator.log"
        with log.open("wb") as sink:
            procs = [_serve(address, db, env, sink) for address in addresses]
        try:
            for address, proc in zip(addresses, procs, strict=True):
                _wait_serving(address, proc)
            yield Servers(",".join(addresses), model.base_url, log, tokens)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The shared dev model + orchestrator (see start_servers)."""
    with start_servers(tmp_path_factory.mktemp("conformance")) as started:
        yield started
