"""The scale section's database: 100k agents and 1M messages, generated once.

Generating it takes a while, so it is cached in bench-results/ and marked with the sizes
it was made for; a cached file whose schema is older than the server's is migrated by
starting the server on it. Rows are written with SQL directly (the server's schema, our
inserts), far faster than through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import NO_MODEL_URL, RESULTS, ROOT, TOKENS, Mode
from .servers import orchestrator_env, start_orchestrator, stop

SCALE_MARKER = "bench_scale"  # meta key holding "agents/messages" once generated
PER_SESSION = 20  # messages per session: 10 turns, each with its run
USER_TEXT = "Please summarise the quarterly figures for the northern region."
ANSWER_TEXT = " ".join(f"tok{k}" for k in range(1, TOKENS + 1))


def scale_db_path(mode: Mode) -> Path:
    return RESULTS / f"scale-{mode.scale_agents}a-{mode.scale_messages}m.db"


def schema_version() -> int:
    """The schema version the server in this tree migrates to."""
    from orchestrator_server.store.migrations import MIGRATIONS

    return len(MIGRATIONS)


def cached_scale_state(path: Path, mode: Mode) -> tuple[bool, int]:
    """(whether the cached file holds the generated rows, its schema version)."""
    if not path.exists():
        return False, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCALE_MARKER,)).fetchone()
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error:
        return False, 0
    return bool(row) and row[0] == f"{mode.scale_agents}/{mode.scale_messages}", version


async def run_migrations(name: str, path: Path) -> None:
    """Start the server on the file and stop it: it migrates the schema on start."""
    child, _, _ = await start_orchestrator(name, path, orchestrator_env(NO_MODEL_URL))
    await stop(child)


async def ensure_scale_db(mode: Mode) -> Path:
    """The cached 100k-agent / 1M-message database (generated on first use; migrated by
    the server when the schema has moved on since)."""
    path = scale_db_path(mode)
    populated, version = cached_scale_state(path, mode)
    if populated:
        if version != schema_version():
            print(
                f"migrating the cached scale database (schema v{version} -> "
                f"v{schema_version()}) ...",
                flush=True,
            )
            await run_migrations("scale-migrate", path)
        print(f"using the cached scale database {path.relative_to(ROOT)}", flush=True)
        return path
    remove_db(path)
    print(
        f"generating {path.relative_to(ROOT)} ({mode.scale_agents:,} agents, "
        f"{mode.scale_messages:,} messages; cached for later runs) ...",
        flush=True,
    )
    began = time.perf_counter()
    # The server creates the schema (its migrations), then we write rows directly.
    await run_migrations("scale-schema", path)
    await asyncio.to_thread(populate, path, mode.scale_agents, mode.scale_messages)
    print(
        f"  generated in {time.perf_counter() - began:.1f} s "
        f"({path.stat().st_size / 2**20:.0f} MiB)",
        flush=True,
    )
    return path


def agent_rows(n_agents: int, now: float) -> Iterator[tuple[Any, ...]]:
    """Agents a000000.. in tenant "default", in teams of 100 by label."""
    from orchestrator_server.core.types import AgentSpec, ModelSpec
    from orchestrator_server.store.sqlite_rows import spec_to_json

    for i in range(n_agents):
        spec = spec_to_json(
            AgentSpec(
                system_message=f"You are agent {i}, a helpful assistant.",
                description=f"generated agent {i}",
                model=ModelSpec(),
                labels={"team": f"t{i % 100}"},
            )
        )
        yield ("default", f"a{i:06d}", spec, now + i * 1e-3, now + i * 1e-3, 1)


@dataclass
class Conversations:
    """Sessions of `PER_SESSION` messages spread round-robin over the first agents, with
    the runs that wrote them."""

    n_agents: int
    n_sessions: int
    now: float

    def keys(self) -> Iterator[tuple[int, str, str]]:
        """(index, agent id, session id) of every session."""
        for k in range(self.n_sessions):
            yield k, f"a{k % self.n_agents:06d}", f"s{k // self.n_agents}"

    def run_id(self, k: int, turn: int) -> str:
        return f"run_{int((self.now + k * 0.01) * 1e6):014x}{k * 16 + turn:012x}"

    def sessions(self) -> Iterator[tuple[Any, ...]]:
        for _, a, s in self.keys():
            yield (a, s, PER_SESSION, self.now, self.now + 10)

    def messages(self) -> Iterator[tuple[Any, ...]]:
        for k, a, s in self.keys():
            for seq in range(1, PER_SESSION + 1):
                turn = (seq - 1) // 2
                role, content = ("user", USER_TEXT) if seq % 2 else ("assistant", ANSWER_TEXT)
                yield (a, s, seq, role, content, self.run_id(k, turn), self.now + k * 0.01 + seq)

    def runs(self) -> Iterator[tuple[Any, ...]]:
        for k, a, s in self.keys():
            for turn in range(PER_SESSION // 2):
                t = self.now + k * 0.01 + 2 * turn
                run = self.run_id(k, turn)
                yield (run, a, s, USER_TEXT, t, ANSWER_TEXT, 12, TOKENS, t, t + 0.05)


def insert_rows(conn: sqlite3.Connection, n_agents: int, n_messages: int) -> None:
    """Every generated row, in the connection's open transaction."""
    now = time.time() - 86_400
    conn.executemany(
        "INSERT INTO agents(tenant, agent_id, spec, create_time, update_time, revision) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        agent_rows(n_agents, now),
    )
    conn.execute(
        "INSERT OR REPLACE INTO tenants(tenant, default_agent_id) VALUES ('default', ?)",
        ("a000000",),
    )
    conversations = Conversations(n_agents, n_messages // PER_SESSION, now)
    conn.executemany(
        "INSERT INTO sessions(tenant, agent_id, session_id, message_count, create_time, "
        "update_time) VALUES ('default', ?, ?, ?, ?, ?)",
        conversations.sessions(),
    )
    conn.executemany(
        "INSERT INTO messages(tenant, agent_id, session_id, seq, role, content, tool_calls, "
        "tool_call_id, run_id, create_time) VALUES ('default', ?, ?, ?, ?, ?, '[]', '', ?, ?)",
        conversations.messages(),
    )
    conn.executemany(
        "INSERT INTO runs(tenant, run_id, agent_id, session_id, status, input, create_time, "
        "request_id, parent_run_id, output, prompt_tokens, completion_tokens, error_reason, "
        "error_message, start_time, end_time) VALUES ('default', ?, ?, ?, 'completed', ?, ?, "
        "'', '', ?, ?, ?, '', '', ?, ?)",
        conversations.runs(),
    )


def populate(path: Path, n_agents: int, n_messages: int) -> None:
    """Fill a migrated, empty database, then mark it as generated for these sizes."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # a crash only loses a cache
        conn.execute("BEGIN")
        insert_rows(conn, n_agents, n_messages)
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            (SCALE_MARKER, f"{n_agents}/{n_messages}"),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def remove_db(path: Path) -> None:
    """Delete a SQLite file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_db(source: Path, target: Path) -> None:
    """A private copy, so that a run never changes the cached file."""
    remove_db(target)
    shutil.copyfile(source, target)
