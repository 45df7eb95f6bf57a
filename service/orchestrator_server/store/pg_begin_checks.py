"""begin_run's later overloads: the checks a run's write makes of its turn's start (the
session's window, schema version 5; a guessed start's agent, version 6). Each is a new
overload, built from the previous version's text: replicas not yet upgraded go on calling
the old one."""

from __future__ import annotations


def with_window_check(begin_run: str) -> str:
    """Version 3's begin_run with two more parameters, the revision of the session (its
    creation time, 0: none yet; and its message count, -1: no check) at which the turn
    read its window: a run stored running in a session that moved on since is stored,
    with the detail 'moved' (a new overload: replicas not yet upgraded go on calling the
    old one)."""
    steps = (
        (
            "p_trace_id text)",
            "p_trace_id text, p_window_time double precision, p_window_count bigint)",
        ),
        ("    v_count bigint;\n", "    v_count bigint;\n    v_time double precision;\n"
         "    v_before bigint;\n"),
        ("RETURNING s.owner INTO v_found;",
         "RETURNING s.owner, s.create_time, s.message_count\n            "
         "INTO v_found, v_time, v_before;"),
        (
            "    RETURN QUERY SELECT 'ok'::text, ''::text, v_status;",
            "    IF p_window_count >= 0 AND v_session AND v_status = 'running' AND\n"
            "            (v_before <> p_window_count OR\n"
            "             (p_window_time <> 0 AND v_time <> p_window_time)) THEN\n"
            "        RETURN QUERY SELECT 'ok'::text, 'moved'::text, v_status;\n"
            "        RETURN;\n"
            "    END IF;\n"
            "    RETURN QUERY SELECT 'ok'::text, ''::text, v_status;",
        ),
    )  # fmt: skip
    for old, new in steps:
        assert begin_run.count(old) == 1, old
        begin_run = begin_run.replace(old, new)
    return begin_run


def with_agent_check(begin_run: str) -> str:
    """Version 5's begin_run with two more parameters, the revision and update time of
    the agent a guessed turn start used (-1: no check): when the agent is not at them
    (changed or deleted since the replica cached it), nothing is written and the outcome
    is 'agent', before any other check (the turn starts again from a read, which decides
    the rest). And a run stored running starts no earlier than its session's last change:
    a write that waited for the end of the turn before it (the session row's lock) began
    after that end, whenever its turn was admitted. A new overload: replicas not yet
    upgraded go on calling the old one."""
    steps = (
        (
            "p_window_count bigint)",
            "p_window_count bigint, p_agent_revision bigint,\n"
            "    p_agent_update_time double precision)",
        ),
        ("    v_before bigint;\n", "    v_before bigint;\n    v_changed double precision;\n"),
        (
            "RETURNING s.owner, s.create_time, s.message_count\n            "
            "INTO v_found, v_time, v_before;",
            "RETURNING s.owner, s.create_time, s.message_count, s.update_time\n            "
            "INTO v_found, v_time, v_before, v_changed;",
        ),
        (
            "    INSERT INTO runs (tenant, run_id,",
            "    IF v_status = 'running' AND v_session THEN\n"
            "        p_start_time := greatest(p_start_time, v_changed);\n"
            "    END IF;\n"
            "    INSERT INTO runs (tenant, run_id,",
        ),
        (
            "BEGIN\n    IF p_request_id <> '' THEN",
            "BEGIN\n"
            "    IF p_agent_revision >= 0 THEN\n"
            "        PERFORM 1 FROM agents a WHERE a.tenant = p_tenant\n"
            "            AND a.agent_id = p_agent_id AND a.revision = p_agent_revision\n"
            "            AND a.update_time = p_agent_update_time;\n"
            "        IF NOT FOUND THEN\n"
            "            RETURN QUERY SELECT 'agent'::text, ''::text, ''::text;\n"
            "            RETURN;\n"
            "        END IF;\n"
            "    END IF;\n"
            "    IF p_request_id <> '' THEN",
        ),
    )
    for old, new in steps:
        assert begin_run.count(old) == 1, old
        begin_run = begin_run.replace(old, new)
    return begin_run
