"""The Prompting & agents tab's "Tools, agents and safety" section: an agent loop the application executes, the
valid-call rates of free vs constrained decoding, prompt injection and jailbreaks measured per defence, and
constitutional self-critique downloaded as DPO JSONL. Handlers run ``explorer.agents`` in a stoppable worker;
the JSON APIs ``/agent``, ``/tool``, ``/injection`` and ``/critique`` are module-level functions.
"""
from __future__ import annotations

import os
import tempfile

import gradio as gr

from components.badge import badge_md, badged_table, stamp
from components.errors import ui_errors
from components.stoppable import drive
from components.tabs.prompting import agent_figures as figs
from explorer.agents import critique as crit
from explorer.agents import injection as inj
from explorer.agents import loop, tools
from explorer.core.progress import run_to_end

INTRO = ("### Tools, agents and safety\nThe model does not run tools; the application does. The tools' JSON schemas "
         "and the call format `<tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>` are stated in the "
         "prompt; each step the model writes a call or an answer, the application validates the call with "
         "jsonschema, runs it only when valid (a calculator that parses the expression and never uses `eval`, a "
         "unit table, a local lookup table) and feeds the observation back: think → act → observe, up to a step "
         "cap. **Constrained** decoding masks every token that would break the call's grammar (lm-format-enforcer).")
INJ_HEADERS = ["#", "attack", "model's answer", "said the canary"]
EXPORT_DIR = os.path.join(tempfile.gettempdir(), "llm-explorer-critique")


def _err(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def agent_api(question: str, model: str | None = None, tools: list | None = None, max_steps: int = 3,
              constrained: bool = False, chat_template: bool | None = None) -> dict:
    """JSON API ``/agent``: ``{"steps": [{"model_output", "call": {"name", "arguments"}, "valid", "observation"}],
    "answer", "notices"}`` of the agent loop on ``question`` (tools: names, default all)."""
    return _err(lambda: run_to_end(loop.iter_run(question, model or None, tools, max_steps, bool(constrained),
                                                 chat_template)).to_api())


def tool_api(name: str, arguments: dict | str) -> dict:
    """JSON API ``/tool``: run one tool with the agents' validation: ``{"ok", "result", "error"}``."""
    return tools.tool_api(name, arguments)


def injection_api(model: str | None = None, defence: str = "none", kind: str = "indirect", limit: int | None = None,
                  chat_template: bool | None = None) -> dict:
    """JSON API ``/injection``: ``{"success_rate", "interval", "items", "notices"}`` of ``kind`` attacks
    ("indirect", "jailbreak") under ``defence`` ("none", "delimiters", "instruction_after")."""
    return _err(lambda: run_to_end(inj.iter_injection(model or None, defence, kind, limit, chat_template)).to_api())


def critique_api(question: str, model: str | None = None, principle: str = "concise",
                 chat_template: bool | None = None) -> dict:
    """JSON API ``/critique``: ``{"answer", "critique", "revision", "preferred", "judge"}`` plus the DPO pair."""
    return _err(lambda: crit.critique(question, model or None, principle, chat_template).to_api())


@ui_errors
def run_agent(model, question, enabled, max_steps, constrained, progress=gr.Progress()):
    """Run the agent loop, showing each step as it is taken."""
    result = yield from drive(lambda flag: loop.iter_run(question, model, list(enabled or []) or None,
                                                         int(max_steps), bool(constrained), stop=flag),
                              progress, gr.update(), on_partial=lambda r: figs.steps_md(r, final=False))
    if result is not None:
        yield figs.steps_md(result)


@ui_errors
def run_rates(model, limit, progress=gr.Progress()):
    """Measure the valid-call rate of free and constrained decoding on the question set."""
    heartbeat = (gr.update(), gr.update(), gr.update())
    result = yield from drive(lambda flag: loop.iter_call_rates(model, int(limit), stop=flag), progress, heartbeat)
    if result is not None:
        rows = [[r["question"], r["free"]["output"], "yes" if r["free"]["valid"] else "no",
                 r["constrained"]["output"], "yes" if r["constrained"]["valid"] else "no"] for r in result.items]
        yield stamp(figs.rates_figure(result), result.provenance), rows, badge_md(result.provenance)


@ui_errors
def run_injection(model, kind, defence, limit, runs, progress=gr.Progress()):
    """Run one kind of attack under one defence; the figure compares the defences run this session."""
    heartbeat = tuple(gr.update() for _ in range(4))
    result = yield from drive(lambda flag: inj.iter_injection(model, defence, kind, int(limit), stop=flag),
                              progress, heartbeat)
    if result is not None:
        runs = dict(runs or {})
        key = (result.kind, result.model)
        runs[key] = {**runs.get(key, {}), result.defence: result}
        yield (runs, stamp(figs.injection_figure(runs[key]), result.provenance), figs.injection_rows(result),
               badge_md(result.provenance))


@ui_errors
def run_critique(model, question, principle, pairs):
    """One answer -> critique -> revision -> judge round; its pair joins this session's DPO file."""
    result = crit.critique(question, model, principle)
    pairs = list(pairs or []) + ([result.pair] if result.pair else [])
    os.makedirs(EXPORT_DIR, exist_ok=True)
    handle, path = tempfile.mkstemp(suffix=".jsonl", prefix="critique-pairs-", dir=EXPORT_DIR)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(crit.pairs_jsonl(pairs))
    return figs.critique_md(result), pairs, (path if pairs else None), f"{len(pairs)} preference pairs this session."


def agents_section(ctx) -> dict:
    """Build the section inside the tab; returns its components by name."""
    limits = ctx.limits
    gr.Markdown(INTRO)
    with gr.Row():
        question = gr.Textbox(value="What is 348 times 27?", label="question", max_lines=2, scale=3,
                              elem_id="agent-question")
        enabled = gr.CheckboxGroup(list(tools.TOOLS), value=list(tools.TOOLS), label="tools", scale=2)
    with gr.Row():
        max_steps = gr.Slider(1, limits.agent_max_steps, value=min(3, limits.agent_max_steps), step=1,
                              label="step cap")
        constrained = gr.Checkbox(value=True, label="constrained decoding of the call (grammar)")
        run = gr.Button("Run the agent", variant="primary", elem_id="agent-run")
        stop = gr.Button("Stop", variant="stop")
    steps = gr.Markdown("Press 'Run the agent': each step appears here as it is taken.", elem_id="agent-steps")
    event = run.click(run_agent, [ctx.model, question, enabled, max_steps, constrained], [steps],
                      api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    with gr.Accordion("Valid-call rate: free vs constrained decoding", open=False):
        with gr.Row():
            rate_limit = gr.Slider(1, len(loop.RATE_QUESTIONS), value=4, step=1, label="questions")
            rate_run = gr.Button("Measure valid-call rates", elem_id="agent-rates-run")
            rate_stop = gr.Button("Stop", variant="stop")
        rate_plot = gr.Plot(figs.rates_figure(None), label="valid-call rates")
        rate_badge, rate_table = badged_table(headers=["question", "free output", "valid", "constrained output",
                                                       "valid"], interactive=False, wrap=True, label="first steps")
        rate_event = rate_run.click(run_rates, [ctx.model, rate_limit], [rate_plot, rate_table, rate_badge],
                                    api_visibility="private")
        rate_stop.click(None, None, None, cancels=[rate_event], api_visibility="private")
    with gr.Accordion("Prompt injection and jailbreaks, measured", open=False):
        gr.Markdown(f"Success means the model's answer contains the harmless canary **{inj.CANARY}**. *Indirect*: "
                    "the question goes through the Embeddings tab's retrieval and the retrieved passage carries "
                    "an instruction to say the canary. *Jailbreak*: the system turn holds the canary as a secret "
                    "and forbids saying it; the user turn is one of the project's templates. "
                    "`refusal_adapter` answers the 'none' prompts through a refusal DPO adapter the bench trained "
                    "once and stored (SmolLM2 only; Gemma base has none and is refused).")
        with gr.Row():
            kind = gr.Dropdown(list(inj.KINDS), value="indirect", label="kind")
            defence = gr.Dropdown(list(inj.DEFENCES), value="none", label="defence")
            inj_limit = gr.Slider(1, limits.injection_max_items, value=min(4, limits.injection_max_items), step=1,
                                  label="attack items")
            inj_run = gr.Button("Run the attacks", elem_id="agent-injection-run")
            inj_stop = gr.Button("Stop", variant="stop")
        inj_plot = gr.Plot(figs.injection_figure({}), label="success rate per defence")
        inj_badge, inj_table = badged_table(headers=INJ_HEADERS, interactive=False, wrap=True, label="attacks")
        inj_runs = gr.State({})
        inj_event = inj_run.click(run_injection, [ctx.model, kind, defence, inj_limit, inj_runs],
                                  [inj_runs, inj_plot, inj_table, inj_badge], api_visibility="private")
        inj_stop.click(None, None, None, cancels=[inj_event], api_visibility="private")
    with gr.Accordion("Constitutional self-critique → DPO pairs", open=False):
        gr.Markdown("The constitution: " + " ".join(f"**{k}**: {v}" for k, v in crit.CONSTITUTION.items()) +
                    " The model answers, critiques its answer against the principle and revises; a stated rule "
                    "judges which follows it. The pairs download as JSONL that the Fine-tuning tab's DPO upload reads.")
        with gr.Row():
            c_question = gr.Textbox(value="Why is the sky blue?", label="question", max_lines=2, scale=3)
            principle = gr.Dropdown(list(crit.CONSTITUTION), value="concise", label="principle")
            c_run = gr.Button("Answer, critique, revise", elem_id="agent-critique-run")
        c_out = gr.Markdown()
        with gr.Row():
            c_count = gr.Markdown()
            c_file = gr.File(label="preference pairs (DPO JSONL)", interactive=False)
        c_pairs = gr.State([])
        c_run.click(run_critique, [ctx.model, c_question, principle, c_pairs], [c_out, c_pairs, c_file, c_count],
                    api_visibility="private")
    gr.api(agent_api, api_name="agent")
    gr.api(tool_api, api_name="tool")
    gr.api(injection_api, api_name="injection")
    gr.api(critique_api, api_name="critique")
    return {"agent_question": question, "agent_run": run, "agent_steps": steps}
