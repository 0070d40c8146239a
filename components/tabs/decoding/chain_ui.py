"""The Decoding tab's "Sampler chain" section: at one step of a sampled column, what each logits-processor stage
keeps and removes, in generate()'s order (``explorer.decoding.chain``). ``/sampler_chain`` is the JSON API."""
from __future__ import annotations

import html

import gradio as gr

from components.badge import badge_md
from components.errors import ui_errors
from explorer.decoding.chain import run_sampler_chain


def sampler_chain_api(text: str, model: str | None = None, strategy: dict | None = None, step: int = 0,
                      chat_template: bool = True) -> dict:
    """JSON API ``/sampler_chain``: ``{"stages": [{"name", "active", "kept_mass", "removed", "top"}], "sampled"}``."""
    try:
        return run_sampler_chain(text, model or None, strategy, step, bool(chat_template)).to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def chain_md(result) -> str:
    """The stages as a Markdown table: active or not, mass kept, tokens removed (top 5 by probability), top 5 after."""
    rows = ["| stage | active | mass kept | removed (most probable) | top after |", "|---|---|---|---|---|"]
    for s in result.stages:
        removed = ", ".join(html.escape(repr(t["text"])) for t in s["removed"][:5]) or "—"
        top = ", ".join(f"{html.escape(repr(t['text']))} {t['p']:.3f}" for t in s["top"][:5])
        rows.append(f"| {s['name']} | {'yes' if s['active'] else 'inactive'} | {s['kept_mass']:.3f} | "
                    f"{removed} | {top} |")
    return (f"{badge_md(result.provenance)}\n\n" + "\n".join(rows) +
            f"\n\nSampled: **{html.escape(repr(result.sampled['text']))}**")


def build_chain_section(ctx) -> dict:
    """Build the "Sampler chain" section (inside the Decoding tab); returns its components by name."""
    gr.Markdown("### Sampler chain\nOne step of a sampled column: the stages in the order generate() applies them "
                "(repetition penalty, no-repeat n-gram, temperature, top-k, top-p, min-p, typical-p), the "
                "probability mass each keeps and the tokens it removes. A later step replays the column with its "
                "seed.")
    with gr.Row():
        temperature = gr.Slider(0.05, 2, value=0.7, step=0.05, label="temperature")
        top_k = gr.Slider(0, 200, value=40, step=1, label="top-k (0 = off)")
        top_p = gr.Slider(0.05, 1, value=0.95, step=0.01, label="top-p")
        penalty = gr.Slider(1, 2, value=1.1, step=0.05, label="repetition penalty")
    with gr.Row():
        seed = gr.Number(1, precision=0, label="seed")
        step = gr.Number(0, precision=0, label="step (0 = first generated token)")
        run = gr.Button("Show the chain", variant="primary", elem_id="decoding-chain-run")
    out = gr.Markdown(elem_id="decoding-chain-out")

    @ui_errors
    def _chain(text, model, t, k, p, r, seed_, step_):
        strategy = {"name": "sampling", "temperature": float(t), "top_k": int(k), "top_p": float(p),
                    "repetition_penalty": float(r), "seed": int(seed_ or 0)}
        return chain_md(run_sampler_chain(text, model, strategy, int(step_ or 0)))

    run.click(_chain, [ctx.prompt, ctx.model, temperature, top_k, top_p, penalty, seed, step], out,
              api_visibility="private", concurrency_id="decoding")
    gr.api(sampler_chain_api, api_name="sampler_chain")
    return {"chain_run": run, "chain_out": out}
