"""Which store a server runs on is chosen plainly: a mistyped URL or several workers on
SQLite are refused at start-up with a message that says what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SERVE = [sys.executable, "-m", "orchestrator_server.cli", "serve", "--address", "127.0.0.1:0"]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--db", "mysql://db/orchestrator"], "'mysql://' is not a supported database"),
        (["--workers", "2"], "--workers > 1 needs PostgreSQL"),
        (["--workers", "0"], "workers must be at least 1"),
    ],
)
def test_a_store_that_cannot_serve_is_refused(flags: list[str], said: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [*SERVE, *flags] + ([] if "--db" in flags else ["--db", str(tmp_path / "x.db")]),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mysql:").exists()  # no directory named after the scheme


def test_several_workers_need_a_fixed_port(postgres_url: str) -> None:
    done = subprocess.run(
        [*SERVE, "--db", postgres_url, "--workers", "2"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--workers > 1 needs a fixed port" in done.stderr
