"""Tools, agents and safety figures: results of ``explorer.agents`` -> plotly figures and markdown (no torch).

Titles sit on the left (the provenance badge sits top right, above the plot area, and never covers them).
"""
from __future__ import annotations

import html
import json

import numpy as np
import plotly.graph_objects as go

from components.badge import badge_md
from components.tabs.prompting.figures import BAD, GOOD, _err, _layout, empty_figure

FREE, CONSTRAINED = "#94a3b8", "#7c3aed"


def _code(text) -> str:
    return "<pre>" + html.escape(str(text) if text not in (None, "") else "(nothing)") + "</pre>"


def steps_md(result, final: bool = True) -> str:
    """Every think -> act -> observe step: the model's tokens, the parsed call, validity, action, observation
    (``final`` False: a run still going, so no verdict on the answer yet)."""
    lines = [badge_md(result.provenance), ""]
    for index, step in enumerate(result.steps, 1):
        verdict = ("valid call ✓" if step.valid else "invalid ✗") if step.kind != "answer" else "final answer"
        lines += [f"**Step {index}** · {verdict} · {step.tokens} tokens · "
                  f"the application: *{html.escape(step.action)}*",
                  "", "model wrote:", _code(step.model_output)]
        if step.call is not None:
            lines += ["parsed call:", _code(json.dumps(step.call))]
        if step.observation is not None:
            lines += ["observation fed back:", _code(step.observation)]
        lines.append("")
    if not final:
        return "\n".join(lines + ["*Running the next step…*"])
    answer = f"**Answer:** {html.escape(result.answer)}" if result.answer else "**No answer.**"
    notices = "".join(f"\n- {html.escape(n)}" for n in result.notices)
    return "\n".join(lines + [answer, notices])


def rates_figure(rates) -> go.Figure:
    """Valid-call rate of free vs constrained decoding, with 95 % bootstrap intervals (``loop.CallRates``)."""
    if rates is None:
        return empty_figure("Press 'Measure valid-call rates'.")
    names = ["free decoding", "constrained (lm-format-enforcer)"]
    values = [rates.rates["free"][0], rates.rates["constrained"][0]]
    intervals = [rates.rates["free"][1:], rates.rates["constrained"][1:]]
    fig = go.Figure(go.Bar(x=names, y=np.asarray(values) * 100, error_y=_err(values, intervals),
                           marker_color=[FREE, CONSTRAINED], text=[f"{v:.0%} of {len(rates.items)}" for v in values],
                           textposition="outside", cliponaxis=False))
    fig.update_yaxes(title="schema-valid calls (%)", range=[0, 115])
    return _layout(fig, f"Valid tool calls on the first step · {rates.model}", height=340)


def injection_figure(results: dict) -> go.Figure:
    """Attack success rate per defence with 95 % bootstrap intervals (``{defence: InjectionResult}``, one kind)."""
    if not results:
        return empty_figure("Run an attack to measure it.")
    ordered = list(results.values())
    values = [r.success_rate for r in ordered]
    fig = go.Figure(go.Bar(x=[r.defence for r in ordered], y=np.asarray(values) * 100,
                           error_y=_err(values, [r.interval for r in ordered]),
                           marker_color=[BAD if v > 0 else GOOD for v in values],
                           text=[f"{v:.0%} of {len(r.items)}" for v, r in zip(values, ordered)],
                           textposition="outside", cliponaxis=False))
    fig.update_yaxes(title="attacks that made the model say the canary (%)", range=[0, 115])
    fig.update_xaxes(title="defence")
    return _layout(fig, f"{ordered[0].kind} attacks · {ordered[0].model}", height=340)


def injection_rows(result) -> list[list]:
    """Table rows: attack, the model's answer, success."""
    return [[i + 1, item["attack"], item["output"], "yes" if item["success"] else "no"]
            for i, item in enumerate(result.items)]


def critique_md(result) -> str:
    """Answer, critique, revision, the judge's verdict and the model's own P(Yes)."""
    judge = result.judge
    scores, p = judge["scores"], judge["self_p_yes"]
    return "\n".join([
        badge_md(result.provenance), "", f"**Principle:** {html.escape(judge['principle'])}",
        "**1. Answer (before)**", _code(result.answer), "**2. Self-critique**", _code(result.critique),
        "**3. Revision (after)**", _code(result.revision),
        f"**Judge** (rule: {judge['rule']}): original {scores['original']:.3g}, revision {scores['revision']:.3g} "
        f"→ preferred: **{result.preferred}**. The model's own P(Yes, follows the principle): original "
        f"{p['original']:.2f}, revision {p['revision']:.2f} (shown, not used).",
        "" if result.pair else "*No preference pair: " + "; ".join(result.notices) + "*"])
