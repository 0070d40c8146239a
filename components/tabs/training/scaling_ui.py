"""The Training & scale tab's scaling section: scaling laws fitted to runs made here (IsoFLOP curves, the
compute-optimal split beside Chinchilla's), the C = 6ND calculator, and a tiny mixture of experts beside a dense
model; with the ``/scaling_fit`` and ``/moe_compare`` JSON APIs.
"""
from __future__ import annotations

import math

import gradio as gr
import pandas as pd
from gradio.context import Context

from components.badge import badge_html, badged_table, stamp
from components.errors import ui_errors
from components.tabs.training import scaling_figures as sfigs
from explorer import scaling
from explorer.core.provenance import formula
from explorer.core.validation import check_mapping
from explorer.scaling import famous
from explorer.scaling.moe import MoeSettings

MODEL_COLUMNS = ["model", "parameters", "training tokens", "tokens per parameter", "C = 6ND (FLOPs)", "sources"]
EXPERT_COLUMNS = ["model", "total parameters", "active per token", "experts (top-k)", "config"]
CALC_PROV = formula("C = 6ND: Kaplan et al. 2020, arXiv:2001.08361, section 2.1; Chinchilla's ~20 tokens per "
                    f"parameter: {famous.CHINCHILLA_SOURCE}")
EXPERTS_PROV = formula("active and total parameters from each config.json (explorer/scaling/experts.py), equal to a "
                       "count of transformers' MixtralForCausalLM built from it")


def _num(x: float) -> str:
    if x >= 1e9:
        return f"{x / 1e9:,.1f} B"
    if x >= 1e6:
        return f"{x / 1e6:,.2f} M"
    return f"{x:,.0f}"


def models_table() -> pd.DataFrame:
    """The calculator's known models with their sources."""
    return pd.DataFrame([[m.name + (" (embedded)" if m.embedded else ""), _num(m.params), _num(m.tokens),
                          f"{m.tokens_per_param:,.0f}", f"{m.compute:.2e}",
                          f"N: {m.params_source}; D: {m.tokens_source}"] for m in famous.known_models()],
                        columns=MODEL_COLUMNS)


def experts_table() -> pd.DataFrame:
    """Active and total parameters of real MoE configs."""
    return pd.DataFrame([[c["name"], f"{c['total_params']:,} ({_num(c['total_params'])})",
                          f"{c['active_params']:,} ({_num(c['active_params'])})", f"{c['experts']} (top-{c['top_k']})",
                          c["source"]] for c in scaling.moe_shapes()], columns=EXPERT_COLUMNS)


def fit_markdown(data: dict, prov) -> str:
    """What the fit says at the chosen compute: our split, its interval, Hoffmann et al.'s and Chinchilla's."""
    fit, iv, pub = data["fit"], data["intervals"], data["published_optimal"]
    ratio_iv = iv.get("tokens_per_param_optimal", [math.nan, math.nan])
    n_iv = iv.get("optimal_params", [math.nan, math.nan])
    notes = "".join(f"\n\n⚠ {n}" for n in data["notices"])
    minima = "; ".join(f"C = {m['budget']:.2g}: N ≈ {_num(m['params'])}" + ("" if m["in_range"] else " (outside the "
                       "sizes trained)") for m in data.get("isoflop_minima", []))
    fitted = sum(r["in_fit"] for r in data["runs"])
    return (f"{badge_html(prov)} **Our fit** on {fitted} of {len(data['runs'])} runs (runs under "
            f"{data['min_fit_steps']} steps, hollow, are still leaving their random start and are not fitted): "
            f"L(N, D) = {fit['E']:.3f} + "
            f"{fit['A']:.3g} / N^{fit['alpha']:.3f} + {fit['B']:.3g} / D^{fit['beta']:.3f} (nats/token; 90 % "
            f"bootstrap: α {iv['alpha'][0]:.2f} to {iv['alpha'][1]:.2f}, β {iv['beta'][0]:.2f} to "
            f"{iv['beta'][1]:.2f}). At C = {data['compute']:.3g} FLOPs it spends the compute on "
            f"**N = {_num(data['optimal_params'])}** parameters (90 %: {_num(n_iv[0])} to {_num(n_iv[1])}) and "
            f"**D = {_num(data['optimal_tokens'])}** tokens: **{data['tokens_per_param_optimal']:,.3g} tokens per "
            f"parameter** (90 %: {ratio_iv[0]:,.3g} to {ratio_iv[1]:,.3g}); 6·N·D = "
            f"{6 * data['optimal_params'] * data['optimal_tokens']:.3g}.\n\n"
            f"{badge_html(formula(data['published_fit']['source']))} Hoffmann et al.'s published fit (E 1.69, A 406.4,"
            f" α 0.34, B 410.7, β 0.28; their text and tokenizer) at the same compute: N = {_num(pub['params'])}, "
            f"D = {_num(pub['tokens'])}, {pub['tokens_per_param']:,.1f} tokens per parameter. "
            f"{badge_html(formula(data['chinchilla_source']))} Chinchilla's rule of thumb: ~20 tokens per parameter "
            f"(at their far larger budgets; the ratio drifts with compute when α ≠ β). Residuals of our fit "
            f"(log predicted - log observed): largest {max(abs(r) for r in data['residuals']):.3f}."
            f"\n\n{badge_html(prov)} Hoffmann et al.'s Approach 2, a parabola in log N through each IsoFLOP curve, "
            f"puts each budget's best size at: {minima or 'no budget has 3 fitted runs'}."
            f"\n\nThe grid: {data['made']}.{notes}")


def build_scaling_section(ctx, browser_id, owner_of) -> dict:
    """Build the scaling accordions inside the Training & scale tab and register ``/scaling_fit`` and
    ``/moe_compare``; ``owner_of(browser_id, request)`` names the session that owns a MoE job. Returns the
    components by name."""
    limits = ctx.limits
    defaults = MoeSettings()
    with gr.Accordion("Scaling laws from our own runs (Chinchilla)", open=True):
        gr.Markdown("Five tiny Llamas (16 thousand to 1 million non-embedding parameters) were each trained at four "
                    "compute budgets on this machine (C = 6ND: a bigger model sees fewer tokens for the same compute). "
                    "For each budget the loss against size is an IsoFLOP curve; its lowest point is the compute-optimal"
                    " size. We fit Hoffmann et al.'s law L(N, D) = E + A/N^α + B/D^β to the runs of 100+ steps "
                    "(Huber loss on log loss, bounded exponents, L-BFGS-B from a grid of starts, bootstrap "
                    "intervals) and read off the compute-optimal N and D for any compute.")
        with gr.Row():
            compute = gr.Number(None, label="compute C (FLOPs; empty = the grid's largest budget)",
                                elem_id="scaling-compute")
            fit_btn = gr.Button("Split this compute optimally", elem_id="scaling-fit")
        fit_plot = gr.Plot(label="IsoFLOP curves and the compute-optimal frontier", elem_id="scaling-plot")
        fit_md = gr.Markdown(elem_id="scaling-summary")
    with gr.Accordion("C = 6ND calculator: compute-optimal and over-trained models", open=False):
        with gr.Row():
            calc_n = gr.Number(135e6, label="parameters N", elem_id="scaling-calc-n")
            calc_d = gr.Number(2e12, label="training tokens D", elem_id="scaling-calc-d")
            calc_btn = gr.Button("Compute C", elem_id="scaling-calc")
        calc_md = gr.Markdown(elem_id="scaling-calc-out")
        calc_plot = gr.Plot(label="Models on N x D")
        models_badge, models = badged_table(value=models_table(), headers=MODEL_COLUMNS, wrap=True,
                                            interactive=False, provenance=CALC_PROV)
        gr.Markdown("SmolLM2-135M saw about 15,000 tokens per parameter, some 750 times Chinchilla's ratio: "
                    "compute-optimal is about the cheapest way to reach a loss in *training*; a model served "
                    "billions of times is cheaper to run when it is small, so its makers spend extra training "
                    "compute on more tokens (inference-optimal, Sardana et al. 2024, arXiv:2401.00448).")
    with gr.Accordion("Mixture of experts: a router picks the top-k experts per token", open=False):
        gr.Markdown("A tiny Mixtral (transformers' `MixtralForCausalLM`: 2 layers, each expert a gated MLP "
                    "2·d_model wide) trains beside a dense Llama whose one MLP is top-k times as wide, so a token "
                    "meets the same MLP weights in both (the MoE adds only its router); same seed, same tokens. "
                    "Without the load-balancing loss (Fedus et al. 2022) the router tends to favour a few experts.")
        with gr.Row():
            moe_experts = gr.Slider(1, limits.max_moe_experts, defaults.experts, step=1, label="experts")
            moe_top_k = gr.Slider(1, limits.max_moe_experts, defaults.top_k, step=1, label="top-k")
            moe_d = gr.Slider(8, limits.max_moe_d_model, defaults.d_model, step=8, label="d_model")
        with gr.Row():
            moe_steps = gr.Slider(1, limits.max_moe_steps, defaults.steps, step=1, label="steps",
                                  elem_id="scaling-moe-steps")
            moe_aux = gr.Number(defaults.aux_loss, label="aux loss coefficient (0 = off)")
            moe_seed = gr.Number(0, precision=0, label="seed")
            moe_btn = gr.Button("Train dense vs MoE", variant="primary", elem_id="scaling-moe")
        moe_md = gr.Markdown(elem_id="scaling-moe-out")
        moe_plot = gr.Plot(label="Dense vs MoE", elem_id="scaling-moe-plot")
        experts_badge, experts = badged_table(value=experts_table(), headers=EXPERT_COLUMNS, wrap=True,
                                              interactive=False, provenance=EXPERTS_PROV)

    @ui_errors
    def show_fit(value):
        result = scaling.scaling_fit(None if value is None or value == "" else value)
        for notice in result.notices:
            gr.Warning(notice)
        data = result.to_api()
        return stamp(sfigs.isoflop_figure(data), result.provenance), fit_markdown(data, result.provenance)

    @ui_errors
    def show_calc(n, d):
        data = scaling.calculator(n, d)
        text = (f"{badge_html(CALC_PROV)} C = 6 × {_num(data['params'])} × {_num(data['tokens'])} = "
                f"**{data['compute']:.3g} FLOPs**; {data['tokens_per_param']:,.1f} tokens per parameter "
                f"({data['chinchilla_ratio']:,.2g}× Chinchilla's 20): {data['verdict']}. Chinchilla-optimal data "
                f"for this N: {_num(data['chinchilla_tokens'])} tokens.")
        return text, stamp(sfigs.calculator_figure(data), CALC_PROV)

    def moe_view(result):
        data = result.to_api()
        s = result.settings
        text = (f"{badge_html(result.provenance)} {(result.message or result.status).rstrip('.')}: dense "
                f"{data['dense_params']:,} parameters; MoE {data['active_params']:,} active of "
                f"{data['total_params']:,} total ({s.experts} experts, top-{s.top_k}); each step routes "
                f"{data['tokens_routed']:,} token-layers × {s.top_k} = {data['tokens_routed'] * s.top_k:,} expert "
                "assignments.")
        return text, stamp(sfigs.moe_figure(data), result.provenance)

    @ui_errors
    def train_moe(owner_id, experts_, top_k_, d_, steps_, aux_, seed_, request: gr.Request):
        owner = owner_of(owner_id, request)
        settings = {"experts": experts_, "top_k": top_k_, "d_model": d_, "steps": steps_, "aux_loss": aux_,
                    "seed": seed_}
        last = None
        for item in scaling.iter_run(settings, owner=owner):
            result = getattr(item, "partial", item)
            if result is not None and result is not last:
                last = result
                yield moe_view(result)

    private = {"api_visibility": "private"}
    fit_btn.click(show_fit, compute, [fit_plot, fit_md], **private)
    calc_btn.click(show_calc, [calc_n, calc_d], [calc_md, calc_plot], **private)
    moe_btn.click(train_moe, [browser_id, moe_experts, moe_top_k, moe_d, moe_steps, moe_aux, moe_seed],
                  [moe_md, moe_plot], **private)
    Context.root_block.load(show_fit, compute, [fit_plot, fit_md], **private)
    Context.root_block.load(show_calc, [calc_n, calc_d], [calc_md, calc_plot], **private)

    @ui_errors
    def scaling_fit_api(compute: float | None = None, chat_template: bool = False) -> dict:
        """JSON API: the scaling law fitted to the stored grid and the compute-optimal split of ``compute`` FLOPs
        (default: the grid's largest budget): ``{"runs": [{"non_embedding_params", "tokens", "loss"}], "fit":
        {"E", "A", "alpha", "B", "beta"}, "intervals", "compute", "optimal_params", "optimal_tokens",
        "tokens_per_param_optimal", ...}``. A compute outside the grid is answered with an extrapolation notice.
        ``chat_template`` must be false (no chat model is involved)."""
        _no_chat(chat_template)
        return scaling.scaling_fit(compute).to_api()

    @ui_errors
    def moe_compare_api(settings: dict | None = None, chat_template: bool = False, request: gr.Request = None) -> dict:
        """JSON API: train a tiny MoE and a dense model of the same active parameters on the same tokens and block
        until done: ``{"dense_losses", "moe_losses", "router_load": [[tokens per expert] per step],
        "active_params", "total_params", ...}``. Settings keys: steps, seed, experts, top_k, d_model, aux_loss (all
        optional). ``chat_template`` must be false."""
        _no_chat(chat_template)
        result = scaling.run(check_mapping(settings, "settings"), owner=owner_of(None, request))
        if result.status == "failed":
            raise ValueError(result.message)
        return scaling.to_api(result)

    gr.api(scaling_fit_api, api_name="scaling_fit")
    gr.api(moe_compare_api, api_name="moe_compare")
    return {"scaling_compute": compute, "scaling_fit": fit_btn, "scaling_plot": fit_plot, "scaling_summary": fit_md,
            "calc_n": calc_n, "calc_d": calc_d, "calc": calc_btn, "calc_plot": calc_plot, "models": models,
            "models_badge": models_badge, "moe": moe_btn, "moe_plot": moe_plot, "moe_summary": moe_md,
            "experts_table": experts, "experts_badge": experts_badge, "moe_experts": moe_experts,
            "moe_top_k": moe_top_k, "moe_d_model": moe_d, "moe_steps": moe_steps, "moe_aux": moe_aux}


def _no_chat(chat_template) -> None:
    if not isinstance(chat_template, bool):
        raise ValueError(f"chat_template must be true or false (got {chat_template!r})")
    if chat_template:
        raise ValueError("chat_template: no chat model is involved here; pass false.")
