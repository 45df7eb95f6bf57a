"""scripts/check_breaking.py in throw-away git repositories holding the real contract.

Each test builds a repository in tmp_path from HEAD's proto/, third_party/ and buf.yaml
(`git archive`), edits the protos, and runs the script as `make lint` does.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = ROOT / "scripts" / "check_breaking.py"
AGENT = Path("proto/orchestrator/v1/agent.proto")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=True,
    )
    return done.stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def check(repo: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def edit(repo: Path, old: str, new: str) -> None:
    path = repo / AGENT
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose only commit is HEAD's contract."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD", "proto", "third_party", "buf.yaml"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    git(tmp_path, "init", "-q", "-b", "main")
    commit_all(tmp_path, "contract")
    return tmp_path


ADDITION = (
    "  int32 max_model_calls = 9;\n",
    "  int32 max_model_calls = 9;\n  // Who owns the agent.\n  string owner = 20;\n",
)
RENAME = ("string system_message = 2;", "string system_prompt = 2;")
RETYPE = ("int32 max_model_calls = 9;", "string max_model_calls = 9;")


def test_single_commit_is_skipped(repo: Path) -> None:
    code, out = check(repo)
    assert code == 0, out
    assert "skipped, HEAD is the first commit" in out


def test_base_without_proto_is_skipped(tmp_path: Path, repo: Path) -> None:
    git(repo, "rm", "-q", "-r", "--cached", "proto")
    git(repo, "commit", "-q", "--amend", "-m", "before the contract")
    commit_all(repo, "contract")
    code, out = check(repo)
    assert code == 0, out
    assert "skipped, proto did not exist in HEAD~1" in out


def test_uncommitted_rename_fails_with_bufs_message(repo: Path) -> None:
    edit(repo, *RENAME)
    code, out = check(repo)
    assert code == 1, out
    assert "against HEAD" in out
    assert 'Field "2" on message "Agent" changed name from "system_message"' in out
    assert 'to "system_prompt"' in out


def test_committed_type_change_fails_against_previous_commit(repo: Path) -> None:
    edit(repo, *RETYPE)
    commit_all(repo, "retype")
    code, out = check(repo)
    assert code == 1, out
    assert "against HEAD~1" in out
    assert 'on message "Agent" changed type from "int32" to "string"' in out


def test_compatible_addition_passes_uncommitted_and_committed(repo: Path) -> None:
    edit(repo, *ADDITION)
    code, out = check(repo)
    assert code == 0, out
    assert "against HEAD " in out and "no breaking changes" in out
    commit_all(repo, "add owner")
    code, out = check(repo)
    assert code == 0, out
    assert "against HEAD~1" in out and "no breaking changes" in out


def test_new_proto_file_counts_as_an_uncommitted_change(repo: Path) -> None:
    (repo / "proto/orchestrator/v1/extra.proto").write_text(
        'syntax = "proto3";\n\npackage orchestrator.v1;\n\n// An extra message.\n'
        "message Extra {\n  // A field.\n  string note = 1;\n}\n"
    )
    code, out = check(repo)
    assert code == 0, out
    assert "against HEAD " in out
