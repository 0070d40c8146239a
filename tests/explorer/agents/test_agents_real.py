"""The agents on the real embedded SmolLM2 (cheap: one question, two steps): a constrained call is schema-valid,
the application's observation is the shipped table's value, and the model answers with it."""
import jsonschema

from explorer.agents import format as fmt
from explorer.agents import loop, run, tools
from explorer.core.progress import run_to_end


def test_constrained_agent_calls_a_tool_the_application_runs(smollm2):
    result = run("What is the population of Veloria?", engine=smollm2, max_steps=2, constrained=True)
    first = result.steps[0]
    assert first.kind == "call" and first.valid, first
    jsonschema.validate(first.call, tools.call_schema())
    assert first.observation == tools.run_tool(first.call["name"], first.call["arguments"]).observation()
    assert first.call == {"name": "lookup", "arguments": {"key": "population of veloria"}}
    assert result.answer is not None and "48210" in result.answer.replace(",", "")  # the invented figure


def test_valid_call_rate_constrained_is_total_on_one_question(smollm2):
    rates = run_to_end(loop.iter_call_rates(engine=smollm2, limit=1))
    assert rates.rates["constrained"][0] == 1.0
    free = [fmt.parse_step(r["free"]["output"], tools.TOOLS) for r in rates.items]
    assert rates.rates["free"][0] == sum(p.kind == "call" and p.valid for p in free) / 1
