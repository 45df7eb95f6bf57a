"""Input rules match whole values (abuse: ids with a trailing newline)."""

from __future__ import annotations

import pytest

from orchestrator_server.core.client_tools import parse_client_tools
from orchestrator_server.core.errors import InvalidArgumentError
from orchestrator_server.core.revisions import parse_etag
from orchestrator_server.core.validation import check_agent_id, check_session_id


@pytest.mark.parametrize("value", ["agent\n", "agent\r\n", "\nagent", "Agent", "a" * 64])
def test_ids_must_match_as_a_whole(value: str) -> None:
    with pytest.raises(InvalidArgumentError):
        check_agent_id(value)
    with pytest.raises(InvalidArgumentError):
        check_session_id(value)


def test_etags_and_tool_names_must_match_as_a_whole() -> None:
    with pytest.raises(InvalidArgumentError):
        parse_etag('W/"3"\n')
    with pytest.raises(InvalidArgumentError):
        parse_client_tools([("lookup\n", "", "")], set())
    assert parse_etag('W/"3"') == 3
    assert check_agent_id("agent-1") == "agent-1"


async def test_a_page_token_is_bound_to_its_exact_label_filter() -> None:
    from fakes import make_core

    core = make_core()
    for name in ("a1", "a2"):
        await core.agent(name, labels={"a": "1", "b": "2"})
    page = await core.agents.list("t", page_size=1, label_filter={"a": "1", "b": "2"})
    assert page.next_page_token
    with pytest.raises(InvalidArgumentError) as foreign:
        await core.agents.list(
            "t", page_size=1, page_token=page.next_page_token, label_filter={"a": "1,b=2"}
        )
    assert foreign.value.reason == "INVALID_PAGE_TOKEN"
    rest = await core.agents.list(
        "t", page_size=1, page_token=page.next_page_token, label_filter={"a": "1", "b": "2"}
    )
    assert [a.agent_id for a in rest.items] == ["a2"]


async def test_pages_of_large_runs_end_early_and_every_run_stays_reachable() -> None:
    """Abuse: six 1 MB turns made every default ListRuns page larger than a client
    accepts; a page now ends before its texts pass the byte budget."""
    from fakes import Reply, collect, make_core

    from orchestrator_server.core.pagination import DEFAULT_PAGE_BYTES
    from orchestrator_server.core.types import TurnRequest

    core = make_core()
    await core.agent("alpha")
    big = "x" * 600_000
    for i in range(6):
        core.model.script(Reply(big))
        await collect(core.engine.execute("t", TurnRequest("alpha", f"turn {i} {big}")))
    seen: list[str] = []
    token = ""
    while True:
        page = await core.records.list("t", page_token=token)
        size = sum(len(r.input) + len(r.output) for r in page.items)
        assert size <= DEFAULT_PAGE_BYTES or len(page.items) == 1
        seen += [r.run_id for r in page.items]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 6
    messages = (
        await core.conversations_page("alpha") if hasattr(core, "conversations_page") else None
    )
    assert messages is None
