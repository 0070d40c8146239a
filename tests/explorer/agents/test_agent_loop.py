"""The stated format, its parser, the agent loop and constrained decoding (tiny random model: its free text is
noise, so any valid call it writes comes from the grammar)."""
import json

import jsonschema
import pytest

from conftest import make_tiny_engine
from explorer.agents import format as fmt
from explorer.agents import loop, run, tools
from explorer.agents.tools import SCHEMAS, TOOLS


def test_parser_reads_calls_answers_and_rejects_bad_json():
    good = fmt.parse_step(fmt.call_text("calculator", {"expression": "2*3"}), TOOLS)
    assert good.kind == "call" and good.valid and good.arguments == {"expression": "2*3"}
    assert fmt.parse_step('<tool_call>{"name": "calculator", "arguments": {"expr": "1"}}</tool_call>',
                          TOOLS).error.startswith("arguments do not match")
    assert "not valid JSON" in fmt.parse_step("<tool_call>{name: calculator}</tool_call>", TOOLS).error
    assert "not closed" in fmt.parse_step('<tool_call>{"name": "calculator"', TOOLS).error
    assert fmt.parse_step("Answer: 42\n", TOOLS).answer == "42"
    assert fmt.parse_step("I think so", TOOLS).kind == "none"


def test_step_end_is_found():
    assert fmt.finished_text('<tool_call>{"a": 1}</tool_call> more') == '<tool_call>{"a": 1}</tool_call>'
    assert fmt.finished_text("Answer: 9\nQuestion") == "Answer: 9"
    assert fmt.finished_text("Answer: 9") is None
    assert fmt.finished_text("x\nObservation: 3") == "x"


def test_header_states_every_schema():
    head = fmt.header(TOOLS)
    stated = json.loads(head.split("Tools (JSON schemas):\n", 1)[1].split("\n", 1)[0])
    assert [s["name"] for s in stated] == list(TOOLS)
    assert all(s["parameters"] == SCHEMAS[s["name"]]["parameters"] for s in stated)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_decoding_always_yields_a_schema_valid_call(seed):
    engine = make_tiny_engine(seed=seed)
    for question in loop.RATE_QUESTIONS[:2]:
        ids = fmt.transcript_ids(engine, question, [], TOOLS, chat=bool(seed % 2))
        text, _ = loop.generate_step(engine, ids, TOOLS, constrained=True, require_call=True)
        body = json.loads(text.split(fmt.CALL_OPEN, 1)[1].rsplit(fmt.CALL_CLOSE, 1)[0])
        jsonschema.validate(body, tools.call_schema(TOOLS))  # independent check of the whole call
        assert fmt.parse_step(text, TOOLS).valid


def test_free_noise_is_refused_and_never_executed(tiny_engine, monkeypatch):
    ran = []
    monkeypatch.setattr(loop, "run_tool", lambda *a, **k: ran.append(a))
    result = run("What is 2+2?", engine=tiny_engine, max_steps=2, chat_template=False)
    assert len(result.steps) == 2 and result.answer is None
    assert all(not s.valid and s.observation.startswith("refused") for s in result.steps)
    assert not ran
    assert any("step cap (2 steps)" in n for n in result.notices)
    api = result.to_api()
    assert set(api["steps"][0]) >= {"model_output", "call", "valid", "observation"} and api["answer"] is None


def test_a_valid_call_runs_and_its_observation_is_fed_back(tiny_engine, monkeypatch):
    """Script the model's steps (a call, then an answer) to check the loop's plumbing end to end."""
    outputs = iter([fmt.call_text("calculator", {"expression": "348*27"}), "Answer: 9396"])
    prompts = []

    def scripted(engine, ids, tools_, constrained, require_call=False, max_tokens=None):
        prompts.append(engine.tokenizer.decode(ids))
        return next(outputs), 5

    monkeypatch.setattr(loop, "generate_step", scripted)
    result = run("What is 348 times 27?", engine=tiny_engine, max_steps=4, chat_template=False)
    assert [s.kind for s in result.steps] == ["call", "answer"] and result.answer == "9396"
    assert result.steps[0].valid and result.steps[0].observation == "9396"
    assert "Observation: 9396" in prompts[1]


def test_bad_requests_name_the_argument(tiny_engine):
    with pytest.raises(ValueError, match="question"):
        run("  ", engine=tiny_engine)
    with pytest.raises(ValueError, match="tools"):
        run("q", tools=["shell"], engine=tiny_engine)
    with pytest.raises(ValueError, match="max_steps"):
        run("q", max_steps=0, engine=tiny_engine)
