"""Template sizes are computed before rendering (abuse: one large value repeated by many
placeholders would be built in memory before any check)."""

from __future__ import annotations

import pytest
from fakes import make_core

from orchestrator_server.core.collaboration import Collaborations
from orchestrator_server.core.errors import InvalidArgumentError, Reason
from orchestrator_server.core.pipelines import PipelineRunner
from orchestrator_server.core.templates import parse_template
from orchestrator_server.core.types import PipelineStep
from orchestrator_server.core.validation import MAX_MESSAGE_CHARS


def test_a_template_refuses_to_render_beyond_the_message_limit() -> None:
    template = parse_template("{input}" * 200, frozenset({"input"}), "steps[0].message_template")
    assert template.size({"input": 10}) == 2000
    with pytest.raises(InvalidArgumentError) as too_large:
        template.render({"input": "x" * 5001})
    assert too_large.value.reason is Reason.REQUEST_TOO_LARGE
    assert too_large.value.violations[0].field == "steps[0].message_template"
    assert too_large.value.metadata["size"] == str(200 * 5001)


async def test_a_pipeline_whose_first_step_would_be_too_large_records_nothing() -> None:
    core = make_core()
    await core.agent("alpha")
    pipelines = PipelineRunner(core.agents, Collaborations(core.store, core.engine))
    steps = [PipelineStep("alpha", "{input} and again {input}")]
    events = pipelines.run("t", steps, "x" * (MAX_MESSAGE_CHARS // 2 + 1))
    with pytest.raises(InvalidArgumentError) as too_large:
        await anext(events)
    assert too_large.value.reason is Reason.REQUEST_TOO_LARGE
    assert (await core.records.list("t")).items == []
    assert core.model.calls == []
