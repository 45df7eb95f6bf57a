"""The conformance scenario, in all four runners at once, against three replicas on one
PostgreSQL database, each runner spreading its calls over them (client-side round robin;
grpcurl, a process per call, takes the next replica for each)."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.conftest import start_servers
from tests.conformance.test_conformance import run_every_client


def test_scenario_passes_in_every_client_against_three_replicas(
    postgres_url: str, tmp_path: Path
) -> None:
    with start_servers(tmp_path, db=postgres_url, replicas=3) as servers:
        assert servers.address.count(",") == 2
        run_every_client(servers)
