"""The Next token tab: every position's prediction, perplexity by domain, Min-K% Prob, loss by position and the
needle in a haystack. Handlers run ``explorer.next_token`` in a stoppable worker and draw with ``figures``;
clicking a token re-draws its top-k from the stored result (the model is not run again).
"""
from __future__ import annotations

import gradio as gr

from components.badge import badged_table, stamp
from components import branching
from components.errors import ui_errors
from components.stoppable import drive as _drive
from components.stoppable import iterate_in_thread
from components.tabs.next_token import figures as figs
from explorer.core.progress import Progress
from explorer.next_token import context, domains, min_k, needle, scoring

INTRO = ("A language model is trained for one thing: give the next token a high probability. The **surprisal** "
         "-log P(x_i | x_<i) of each actual token says how unexpected it was; its mean is the **cross-entropy** L "
         "the model was trained to lower, and **perplexity** exp(L) is the number of equally likely choices that "
         "would be as uncertain. Click a token to see what the model expected there.")


def _parse_list(text, name: str, kind=float) -> list:
    if isinstance(text, (list, tuple)):
        return list(text)
    try:
        return [kind(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers (got {text!r}).") from None


BRANCH_INTRO = ("#### Continue from here with another token\nThe model's top-k at the clicked position (at first, "
                "the most surprising one): click a token to force it there and let the model continue greedily "
                "from it. Branches of this session form the tree below; pick two to compare them token by token.")


def fork_at(result, evt: gr.SelectData | None = None):
    """The branch panel's alternatives at a clicked token (the prediction made just before it; the most surprising
    position when ``evt`` is None): the fork continues right after the plain text's tokens before it."""
    if result is None:
        return branching.offer(None, [], None)
    index = int(result.surprisal.argmax()) + 1
    if evt is not None and evt.index is not None:
        index = int(evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index)
    if index < 1:
        return gr.update(), gr.update(), gr.update()
    i = index - 1
    top = [(t, result.top_texts.get(int(t), str(t)), p) for t, p in zip(result.top_ids[i].tolist(),
                                                                         result.top_p[i].tolist())]
    fork = {"text": "".join(result.token_texts[:index]), "model": result.model, "chat": False, "position": 0,
            "prompt_ids": [int(t) for t in result.ids[:index]]}
    return branching.offer(fork, top, result.provenance)


@ui_errors
def _branch(fork_state, n, evt: gr.SelectData, request: gr.Request):
    return branching.on_select(fork_state, n, evt, request)


def _prediction_section(ctx) -> dict:
    gr.Markdown(INTRO)
    with gr.Row():
        top_k = gr.Slider(1, scoring.MAX_TOP_K, value=10, step=1, label="top-k shown per position")
        run = gr.Button("Score every token", variant="primary", elem_id="next_token-run")
        stop = gr.Button("Stop", variant="stop")
    badge = gr.Markdown(elem_id="next_token-badge")
    summary = gr.Markdown(elem_id="next_token-summary")
    chips = gr.HighlightedText(label="tokens coloured by surprisal (click one)", color_map=figs.COLORS,
                               show_legend=True, show_inline_category=False, combine_adjacent=False,
                               elem_id="next_token-chips")
    plot = gr.Plot(elem_id="next_token-main-plot", label="surprisal per position")
    topk = gr.Plot(label="the model's top-k at the clicked position", elem_id="next_token-topk")
    state = gr.State(None)

    @ui_errors
    def score(text, model, k, progress=gr.Progress()):
        heartbeat = tuple(gr.update() for _ in range(6))
        result = yield from _drive(lambda flag: scoring.iter_run(text, model, int(k), stop=flag), progress, heartbeat)
        for notice in result.notices:
            gr.Warning(notice)
        worst = int(result.surprisal.argmax()) + 1
        yield (result, figs.chips(result), stamp(figs.surprisal_figure(result), result.provenance),
               stamp(figs.topk_figure(result, worst), result.provenance), figs.summary_md(result),
               figs.badge_md(result.provenance))

    def pick(result, evt: gr.SelectData):
        if result is None or evt is None or evt.index is None:
            return gr.update()
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if int(index) < 1:
            gr.Info("The first token has no prediction: nothing comes before it.")
            return gr.update()
        return stamp(figs.topk_figure(result, int(index)), result.provenance)

    panel = branching.build_branch_panel(ctx, "next_token", BRANCH_INTRO, _branch)
    alts = [panel["branch_state"], panel["branch_badge"], panel["branch_alts"]]
    event = run.click(score, [ctx.prompt, ctx.model, top_k], [state, chips, plot, topk, summary, badge],
                      api_visibility="private")
    event.success(lambda r: fork_at(r, None), state, alts, api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    chips.select(pick, state, topk, api_visibility="private")
    chips.select(fork_at, state, alts, api_visibility="private")

    def perplexity_api(text: str, model: str | None = None, top_k: int = 10) -> dict:
        """JSON API: ``{"tokens": [{"id", "text", "logprob", "rank", "top": [{"id", "text", "p"}]}],
        "cross_entropy", "perplexity", "bits_per_byte", "notices", ...}`` (plain text, no chat template)."""
        try:
            return scoring.run(text, model or None, top_k).to_api()
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(perplexity_api, api_name="perplexity")
    return {**panel, "top_k": top_k, "run": run, "stop": stop, "plot": plot, "chips": chips, "topk": topk,
            "summary": summary, "result": state, "state": state}


def _domain_section(ctx) -> dict:
    gr.Markdown("### Perplexity by domain\nThe same model on texts we wrote: prose, code, French, Japanese, "
                "numbers, the prose with its words shuffled, and random tokens. Per-token perplexity depends on "
                "the tokenizer; **bits per byte** does not, so it is the fair comparison across models. The table "
                "below is stored from the bench; *Recompute live* measures it now on the picked model.")
    with gr.Row():
        live = gr.Button("Recompute live on the picked model")
        stop = gr.Button("Stop", variant="stop")
    badge = gr.Markdown()
    plot = gr.Plot(label="perplexity by domain", elem_id="next_token-domains-plot")
    table_badge, table = badged_table(headers=figs.DOMAIN_HEADERS, interactive=False)

    def show_stored(model):
        stored_table = domains.load_stored(model or "smollm2-135m-instruct")
        if stored_table is None:
            return (f"No stored table for {model}; press *Recompute live*.", figs.empty_figure("no stored table"),
                    [], None)
        return (figs.badge_md(stored_table.provenance), stamp(figs.domain_figure(stored_table), stored_table.provenance),
                figs.domain_rows(stored_table), stored_table.provenance)

    @ui_errors
    def recompute(model, progress=gr.Progress()):
        result = yield from _drive(lambda flag: domains.iter_run(model, stop=flag), progress,
                                   (gr.update(), gr.update(), gr.update(), gr.update()))
        yield (figs.badge_md(result.provenance), stamp(figs.domain_figure(result), result.provenance),
               figs.domain_rows(result), result.provenance)

    gr.on([gr.context.Context.root_block.load, ctx.model.change], show_stored, ctx.model,
          [badge, plot, table, table_badge], api_visibility="private")
    event = live.click(recompute, ctx.model, [badge, plot, table, table_badge], api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    return {"domains_plot": plot, "domains_run": live}


def _min_k_section(ctx) -> dict:
    gr.Markdown("### Has the model seen this text? (Min-K% Prob)\n" + min_k.CAVEAT)
    with gr.Row():
        passage = gr.Textbox(label="passage (empty = the prompt above)", lines=3, scale=4)
        k = gr.Slider(0.05, 1.0, value=0.2, step=0.05, label="k (fraction of least likely tokens)", scale=1)
        run = gr.Button("Score the passage", scale=1)
    badge = gr.Markdown()
    plot = gr.Plot(label="Min-K% Prob", elem_id="next_token-min-k-plot")

    @ui_errors
    def score(text, prompt, model, kk, progress=gr.Progress()):
        progress(0, desc="scoring the passage and the two references")
        result = min_k.run(text if (text or "").strip() else prompt, model, float(kk))
        return figs.badge_md(result.provenance), stamp(figs.min_k_figure(result), result.provenance)

    run.click(score, [passage, ctx.prompt, ctx.model, k], [badge, plot], api_visibility="private")

    def min_k_api(text: str, model: str | None = None, k: float = 0.2) -> dict:
        """JSON API: ``{"score" (nats), "k", "references": {"famous", "fresh"}, "caveat", ...}``."""
        try:
            return min_k.run(text, model or None, k).to_api()
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(min_k_api, api_name="min_k")
    return {"min_k_k": k, "min_k_plot": plot}


def _context_section(ctx) -> dict:
    limits = ctx.limits
    gr.Markdown(f"### Context window\n**Loss by position**: the built-in essay (up to {limits.max_position_tokens:,} "
                "tokens) scored token by token; the red line is the mean per doubling of the position.")
    with gr.Row():
        run_pos = gr.Button("Measure loss by position")
        stop_pos = gr.Button("Stop", variant="stop")
    pos_summary = gr.Markdown()
    pos_plot = gr.Plot(label="loss by position", elem_id="next_token-position-plot")
    gr.Markdown(f"**Needle in a haystack**: the sentence *“{needle.NEEDLE}”* is placed at a depth of the essay, "
                "then the model is asked for the passcode. Green: greedy decoding answers it exactly. The stored "
                "grid (up to 4,096 tokens) comes from the bench; a live grid accepts up to "
                f"{limits.max_needle_tokens:,} tokens and {limits.max_needle_cells} cells.")
    with gr.Row():
        lengths = gr.Textbox("256, 512, 1024", label="lengths (tokens)")
        depths = gr.Textbox("0, 0.5, 1", label="depths (0 = start, 1 = end)")
        run_needle = gr.Button("Run a live grid")
        stop_needle = gr.Button("Stop", variant="stop")
    needle_badge = gr.Markdown()
    verdict = gr.Markdown()
    needle_plot = gr.Plot(label="needle grid", elem_id="next_token-needle-plot")

    @ui_errors
    def positions(model, progress=gr.Progress()):
        result = yield from _drive(lambda flag: context.iter_run(model, stop=flag), progress,
                                   (gr.update(), gr.update()))
        for notice in result.notices:
            gr.Warning(notice)
        yield (f"{result.summary()}\n\n{figs.badge_md(result.provenance)}",
               stamp(figs.position_figure(result), result.provenance))

    def show_stored(model):
        grid = needle.load_stored(model or "smollm2-135m-instruct")
        if grid is None:
            return "", f"No stored grid for {model}; run a live one.", figs.empty_figure("no stored grid")
        return figs.badge_md(grid.provenance), grid.verdict(), stamp(figs.needle_figure(grid), grid.provenance)

    @ui_errors
    def live(model, lens_text, deps_text, progress=gr.Progress()):
        lens, deps = _parse_list(lens_text, "lengths", int), _parse_list(deps_text, "depths", float)
        result = None
        for item in iterate_in_thread(lambda flag: needle.iter_run(model, lens, deps, stop=flag)):
            if isinstance(item, Progress):
                progress(item.fraction, desc=item.message)
                yield (figs.badge_md(item.partial.provenance), "running ...",
                       stamp(figs.needle_figure(item.partial), item.partial.provenance))
            elif item is None:
                yield gr.update(), gr.update(), gr.update()
            else:
                result = item
        yield figs.badge_md(result.provenance), result.verdict(), stamp(figs.needle_figure(result), result.provenance)

    event = run_pos.click(positions, ctx.model, [pos_summary, pos_plot], api_visibility="private")
    stop_pos.click(None, None, None, cancels=[event], api_visibility="private")
    gr.on([gr.context.Context.root_block.load, ctx.model.change], show_stored, ctx.model,
          [needle_badge, verdict, needle_plot], api_visibility="private")
    event = run_needle.click(live, [ctx.model, lengths, depths], [needle_badge, verdict, needle_plot],
                             api_visibility="private")
    stop_needle.click(None, None, None, cancels=[event], api_visibility="private")

    def needle_api(model: str | None = None, lengths: list[int] | None = None,
                   depths: list[float] | None = None) -> dict:
        """JSON API: ``{"grid": [[accuracy per depth] per length], "lengths", "depths", "metric",
        "answer_logprob", "verdict", "cells", ...}``; over the caps it is refused with the caps."""
        try:
            return needle.run(model or None, lengths or [256, 512], depths or [0.0, 0.5, 1.0]).to_api()
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(needle_api, api_name="needle")
    return {"needle_lengths": lengths, "needle_depths": depths, "needle_plot": needle_plot,
            "position_plot": pos_plot, "position_run": run_pos, "needle_run": run_needle}


def build_next_token_tab(ctx) -> dict:
    """Build the Next token tab; returns its components by name (``"result"``: the last scored text)."""
    parts = _prediction_section(ctx)
    parts.update(_domain_section(ctx))
    parts.update(_min_k_section(ctx))
    parts.update(_context_section(ctx))
    return parts
