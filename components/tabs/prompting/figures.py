"""Prompting & benchmarks figures: results of ``explorer.prompting`` -> plotly figures, tables and markdown (no torch).

Titles sit on the left and subplots are named by their axis titles, so the provenance badge (top right, above the
plot area) never covers a title.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.prompting.patterns import LABELS, PATTERNS

GOOD, BAD, BEFORE, AFTER = "#16a34a", "#dc2626", "#94a3b8", "#7c3aed"
LEAKED, UNSEEN = "#ea580c", "#0284c7"
ITEM_HEADERS = ["#", "correct", "answer", "model's answer", "output (first line)", "tokens"]
BENCH_HEADERS = ["#", "question", "options (log-likelihood, nats)", "acc pick", "acc_norm pick", "right"]


def _layout(fig, title: str, height: int = 380):
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, height=height,
                      margin={"l": 60, "r": 20, "t": 70, "b": 60}, legend={"orientation": "h", "y": -0.2})
    return fig


def empty_figure(message: str) -> go.Figure:
    """A placeholder with a message and no data (needs no badge)."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height=220)


def _err(values, intervals):
    values = np.asarray(values, dtype=float)
    low = np.asarray([i[0] for i in intervals], dtype=float)
    high = np.asarray([i[1] for i in intervals], dtype=float)
    return {"type": "data", "symmetric": False, "array": (high - values) * 100, "arrayminus": (values - low) * 100}


def patterns_figure(results: dict) -> go.Figure:
    """Accuracy (with 95 % bootstrap intervals) and tokens per item of each pattern run on one task and model.

    ``results``: ``{pattern: PromptingResult}`` (the session's runs on the same task, model and form).
    """
    ordered = [results[p] for p in PATTERNS if p in results]
    if not ordered:
        return empty_figure("Run a pattern to measure it.")
    first = ordered[0]
    names = [LABELS[r.pattern] + (f" (k={r.k})" if r.pattern == "few_shot" else "")
             + (f" (N={r.n_samples})" if r.pattern == "self_consistency" else "") for r in ordered]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.12)
    acc = [r.accuracy for r in ordered]
    fig.add_trace(go.Bar(x=names, y=np.asarray(acc) * 100, error_y=_err(acc, [r.interval for r in ordered]),
                         marker_color=[GOOD if a >= 0.5 else BAD for a in acc], name="accuracy",
                         text=[f"{a:.0%} of {len(r.items)}" for a, r in zip(acc, ordered)],
                         textposition=["inside" if a >= 0.2 else "outside" for a in acc], cliponaxis=False,
                         hovertemplate="%{x}: %{y:.0f} %<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=[r.tokens / max(len(r.items), 1) for r in ordered], marker_color="#64748b",
                         name="tokens per item", hovertemplate="%{x}: %{y:.0f} tokens per item<extra></extra>"),
                  row=1, col=2)
    fig.update_yaxes(title_text="accuracy (%), 95 % interval", range=[0, 105], row=1, col=1)
    fig.update_yaxes(title_text="tokens per item (prompt + generated)", row=1, col=2)
    form = "chat turn" if first.chat_template else "plain text"
    fig.update_layout(showlegend=False)
    return _layout(fig, f"Prompting patterns on {first.task} ({first.model}, {form})")


def summary_md(result) -> str:
    """One paragraph: accuracy, interval, tokens, time, notices."""
    lo, hi = result.interval
    form = "through the chat template" if result.chat_template else "as plain text"
    lines = [f"**{LABELS[result.pattern]}** on **{result.task}**: **{result.accuracy:.0%}** correct "
             f"({sum(i.correct for i in result.items)} of {len(result.items)} items; 95 % bootstrap interval "
             f"{lo:.0%}–{hi:.0%}), {result.tokens:,} tokens processed, prompts fed {form}, {result.seconds:.1f} s."]
    lines += [f"- {html.escape(n)}" for n in result.notices]
    return "\n".join(lines)


def item_rows(result) -> list[list]:
    """The items table: one row per scored item."""
    return [[n + 1, "✓" if i.correct else "✗", i.answer, i.extracted if i.extracted is not None else "(none)",
             (i.output.strip().split("\n")[0] or "(empty)")[:120], i.tokens] for n, i in enumerate(result.items)]


def item_md(result, index: int) -> str:
    """Everything about one item: the prompt as the model received it, what it wrote, the verdict, the samples."""
    if result is None or not 0 <= index < len(result.items):
        return ""
    item = result.items[index]
    parts = [f"**Item {index + 1}** (`{item.id}`): reference answer **{html.escape(item.answer)}**, read back "
             f"**{html.escape(str(item.extracted))}** → {'correct' if item.correct else 'wrong'}; {item.tokens} tokens.",
             "Prompt as the model received it:", f"```text\n{item.prompt}\n```", "What it wrote:",
             f"```text\n{item.output or '(nothing)'}\n```"]
    if item.samples:
        label = "Votes of the sampled chains" if result.pattern == "self_consistency" else \
            "Lines explored (mean log-probability per token, then the line)"
        parts += [f"{label}:", "```text\n" + "\n".join(str(s) for s in item.samples) + "\n```"]
    return "\n\n".join(parts)


def benchmark_figure(result) -> go.Figure:
    """acc and acc_norm with their 95 % bootstrap intervals, beside chance (25 % for four options)."""
    fig = go.Figure()
    values = [result.acc, result.acc_norm]
    fig.add_trace(go.Bar(x=["acc (highest log-likelihood)", "acc_norm (per byte)"], y=np.asarray(values) * 100,
                         error_y=_err(values, [result.interval, result.interval_norm]),
                         marker_color=[GOOD, "#0d9488"], text=[f"{v:.0%}" for v in values], cliponaxis=False,
                         textposition=["inside" if v >= 0.2 else "outside" for v in values],
                         hovertemplate="%{x}: %{y:.0f} %<extra></extra>"))
    fig.add_hline(y=25, line_dash="dot", line_color="#94a3b8", annotation_text="chance (4 options)",
                  annotation_position="bottom left")
    fig.update_yaxes(title_text="accuracy (%), 95 % interval", range=[0, 105])
    adapter = f", LoRA adapter {result.adapter}" if result.adapter else ""
    return _layout(fig, f"{result.task} as multiple choice: {result.n} items ({result.model}{adapter})", 360)


def benchmark_md(result) -> str:
    """The benchmark numbers as a sentence, with the notices."""
    lo, hi = result.interval
    lines = [f"**acc {result.acc:.0%}** (95 % interval {lo:.0%}–{hi:.0%}) and **acc_norm {result.acc_norm:.0%}** "
             f"on {result.n} {result.task} items, each option scored by its log-likelihood given the question "
             f"(chance is 25 %), {result.seconds:.1f} s."]
    lines += [f"- {html.escape(n)}" for n in result.notices]
    return "\n".join(lines)


def benchmark_rows(result) -> list[list]:
    """The benchmark items table."""
    rows = []
    for n, i in enumerate(result.items):
        options = "; ".join(f"{o} ({ll:.2f})" for o, ll in zip(i.options, i.logliks))
        rows.append([n + 1, i.question[:90], options, i.options[i.pick], i.options[i.pick_norm],
                     "✓" if i.pick == i.label else "✗"])
    return rows


def contamination_figure(result) -> go.Figure:
    """Left: accuracy before and after the leak, leaked vs unseen items. Right: Min-K% Prob per item."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.14)
    for name, split, colour in (("leaked", result.leaked, LEAKED), ("unseen", result.unseen, UNSEEN)):
        values = [split.acc_before, split.acc_after]
        fig.add_trace(go.Bar(x=["before the leak", "after the leak"], y=np.asarray(values) * 100,
                             error_y=_err(values, [split.interval_before, split.interval_after]), name=f"{name} items",
                             marker_color=colour, legendgroup=name,
                             hovertemplate=f"{name}: " + "%{y:.0f} %<extra></extra>"), row=1, col=1)
        for phase, scores in (("before", split.min_k_before), ("after", split.min_k_after)):
            fig.add_trace(go.Box(y=scores, x=[f"{phase}"] * len(scores), name=f"{name} items", marker_color=colour,
                                 legendgroup=name, showlegend=False, boxpoints="all", jitter=0.4, pointpos=0,
                                 offsetgroup=name, hovertemplate=f"{name}, {phase}: " + "%{y:.2f}<extra></extra>"),
                          row=1, col=2)
    fig.update_layout(barmode="group", boxmode="group")
    fig.update_yaxes(title_text="multiple-choice accuracy (%)", range=[0, 105], row=1, col=1)
    fig.update_yaxes(title_text=f"Min-{result.to_api()['min_k']:.0%} Prob (nats, higher = familiar)", row=1, col=2)
    fig.update_xaxes(title_text=f"AUROC leaked vs unseen: {result.auroc_before:.2f} → {result.auroc_after:.2f}",
                     row=1, col=2)
    return _layout(fig, f"Contamination on {result.task}: a LoRA run on {len(result.leaked.ids)} test items "
                        f"({result.model})", 420)


def contamination_md(result) -> str:
    """The inflation and its detection in words, with the run id for ``/benchmark``."""
    lk, un = result.leaked, result.unseen
    lines = [f"The adapter trained {result.steps} steps on the **{len(lk.ids)} leaked** test items (final loss "
             f"{result.final_loss:.3f}). Accuracy on them went **{lk.acc_before:.0%} → {lk.acc_after:.0%}**; on the "
             f"**{len(un.ids)} unseen** items {un.acc_before:.0%} → {un.acc_after:.0%}: an inflation of "
             f"**{result.inflation * 100:+.0f} points** that says nothing about ability.",
             f"Min-K% Prob separates leaked from unseen items with AUROC **{result.auroc_after:.2f}** after the leak "
             f"({result.auroc_before:.2f} before; 0.5 is chance). Score this adapter again in *Benchmark scoring* "
             f"with run id `{result.run_id}`; it is private to this session."]
    lines += [f"- {html.escape(n)}" for n in result.notices]
    return "\n\n".join(lines)


def handbook_md(rows) -> str:
    """The handbook's benchmark list (what each tests, what a high score means) as Markdown bullets."""
    return "\n".join(f"- **{name}**: {tests}; a high score means {means}." for name, tests, means in rows)


def stored_figure(table, model: str) -> go.Figure:
    """The stored table for ``model``: accuracy (%) per task and pattern, every cell with its interval and n."""
    rows = table.for_model(model)
    if not rows:
        return empty_figure(f"No stored table for {model} yet (python bench/bench_prompting.py --write).")
    from explorer.prompting.tasks import TASKS

    columns = [p for p in PATTERNS + ("benchmark",) if any(r["pattern"] == p for r in rows)]
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    z, text = [], []
    for task in tasks:
        z_row, t_row = [], []
        for pattern in columns:
            row = next((r for r in rows if r["task"] == task and r["pattern"] == pattern), None)
            if row is None:
                z_row.append(None)
                t_row.append("")
                continue
            value = row.get("accuracy", row.get("acc"))
            z_row.append(value * 100)
            t_row.append(f"{value:.0%}<br>[{row['interval'][0]:.0%}–{row['interval'][1]:.0%}]<br>n={row['n']}")
        z.append(z_row)
        text.append(t_row)
    names = [LABELS.get(p, "benchmark (acc, log-lik.)") for p in columns]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=tasks, text=text, texttemplate="%{text}", zmin=0, zmax=100,
                               colorscale="RdYlGn", colorbar={"title": "accuracy %"},
                               hovertemplate="%{y}, %{x}: %{z:.0f} %<extra></extra>"))
    fig.update_xaxes(title_text="pattern (95 % bootstrap interval, items scored)")
    return _layout(fig, f"Stored: every pattern on the held-out items ({model})", 420)
