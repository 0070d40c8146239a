"""The Tokens tab: coloured tokens with ids, counts, 2-5 tokenizers side by side, the chat template."""
from __future__ import annotations

import html

import gradio as gr
from gradio.context import Context
import pandas as pd

from components.badge import badged_table, stamp
from components.errors import ui_errors
from components.tabs.tokens import figures as figs
from explorer import tokens
from explorer.tokens.backends import OFFLINE_TOKENIZERS

MAX_SIDE_BY_SIDE = 5
EMPTY = "<p class='tok-empty'>Type a prompt above to see its tokens.</p>"
TABLE_COLUMNS = ["#", "token", "id", "bytes (hex)", "start", "end", "special"]


def _names(selected: list[str] | None, hub_id: str | None) -> list[str]:
    names = list(selected or [])
    hub_id = (hub_id or "").strip()
    if hub_id and hub_id not in names:
        names.append(hub_id)
    if not names:
        raise ValueError(f"Choose at least one tokenizer: {', '.join(OFFLINE_TOKENIZERS)}.")
    if len(names) > MAX_SIDE_BY_SIDE:
        gr.Warning(f"At most {MAX_SIDE_BY_SIDE} tokenizers side by side; showing the first {MAX_SIDE_BY_SIDE}.")
        names = names[:MAX_SIDE_BY_SIDE]
    return names


def counts_table(result: tokens.TokenizationResult) -> pd.DataFrame:
    """One row per tokenizer: tokens, characters, words, chars/token, tokens/100 words, difference in %."""
    base = result.results[0].count if result.results else 0
    rows = []
    for r in result.results:
        diff = (r.count - base) / base * 100 if base else 0.0
        rows.append({"tokenizer": r.name, "kind": r.kind, "vocab": r.vocab_size, "tokens": r.count,
                     "characters": r.chars, "words": r.words, "chars/token": round(r.chars_per_token, 2),
                     "tokens/100 words": round(r.tokens_per_100_words, 1),
                     f"vs {result.results[0].name}": f"{diff:+.1f} %", "round-trip": "exact" if r.lossless else "lossy"})
    return pd.DataFrame(rows)


def token_table(result: tokens.TokenizationResult | None, name: str | None, limit: int) -> pd.DataFrame:
    """Token, id, bytes and character span for one tokenizer (first ``limit`` rows)."""
    if result is None:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    chosen = next((r for r in result.results if r.name == name), result.results[0])
    return pd.DataFrame([[i, figs.visible_whitespace(t.text), t.id, t.bytes_hex, t.start, t.end, t.special]
                         for i, t in enumerate(chosen.tokens[:limit])], columns=TABLE_COLUMNS)


def side_by_side_html(result: tokens.TokenizationResult, limit: int, show_ids: bool) -> str:
    """Chips of each tokenizer in its own column."""
    cols = "".join(
        f"<div style='flex:1;min-width:240px'>{figs.chips_html(r.tokens, limit, show_ids, f'{r.name} · {r.count:,} tokens')}</div>"
        for r in result.results)
    return f"<div style='display:flex;gap:12px;flex-wrap:wrap'>{cols}</div>"


def chat_html(text: str, model: str, parse_special: bool, limit: int) -> str:
    """The prompt wrapped by the model's chat template, special tokens outlined, with both counts."""
    try:
        chat = tokens.chat_template(text, model=model, parse_special=parse_special)
    except ValueError as exc:
        return f"<p>{html.escape(str(exc))} (choose a chat model such as smollm2-135m-instruct).</p>"
    mode = "parsed as special tokens" if parse_special else "kept as plain text"
    summary = (f"<p><b>{len(chat.tokens):,}</b> tokens in the chat-formatted prompt: <b>{chat.special_count}</b> special, "
               f"<b>{chat.content_count:,}</b> content. Special-token text typed in the prompt is {mode}. "
               f"Counts: parsed {chat.count_parsed:,} · plain text {chat.count_plain:,}.</p>")
    return summary + figs.chips_html(chat.tokens, limit, False, f"{model} chat template")


def render_tokens(text, names, hub, parse, ids, model, limit: int) -> tuple:
    """Outputs ``(result, counts, figure, chips, chat, which, table, provenance)`` for the prompt ``text``
    (``provenance`` feeds the tables' badges; the figure carries its own).

    Only the empty string shows the empty state; spaces, newlines and tabs are tokens too.
    """
    if not text:
        return None, pd.DataFrame(), None, EMPTY, "", gr.update(), token_table(None, None, limit), None
    result = tokens.run(text, _names(names, hub), parse_special=parse)
    rows = [{"name": r.name, "count": r.count, "chars_per_token": r.chars_per_token} for r in result.results]
    names_out = [r.name for r in result.results]
    return (result, counts_table(result), stamp(figs.comparison_figure(rows), result.provenance),
            side_by_side_html(result, limit, ids), chat_html(text, model or OFFLINE_TOKENIZERS[0], parse, limit),
            gr.update(choices=names_out, value=names_out[0]), token_table(result, names_out[0], limit),
            result.provenance)


def build_tokens_tab(ctx) -> dict:
    """Build the Tokens tab; returns its components by name."""
    limit = ctx.limits.max_display_tokens
    with gr.Row():
        selected = gr.CheckboxGroup(OFFLINE_TOKENIZERS, value=list(OFFLINE_TOKENIZERS), label="Tokenizers (2-5 side by side)",
                                    elem_id="tokens-tokenizers", scale=3)
        hub_id = gr.Textbox(label="Add a Hub tokenizer (owner/name, online only)", scale=1)
    with gr.Row():
        parse_special = gr.Checkbox(True, label="Parse special-token text (e.g. <|im_end|>) in the prompt as special tokens")
        show_ids = gr.Checkbox(False, label="Show ids under the tokens")
        run = gr.Button("Tokenize", variant="primary", elem_id="tokens-run")
    chips = gr.HTML(EMPTY, elem_id="tokens-chips")
    with gr.Row():
        counts_badge, counts = badged_table(label="Counts", interactive=False, elem_id="tokens-counts")
    plot = gr.Plot(elem_id="tokens-main-plot", label="Comparison")
    with gr.Accordion("Chat template", open=True):
        chat = gr.HTML(elem_id="tokens-chat")
    with gr.Accordion("Token table", open=False):
        which = gr.Dropdown(OFFLINE_TOKENIZERS, value=OFFLINE_TOKENIZERS[0], label="Tokenizer")
        table_badge, table = badged_table(headers=TABLE_COLUMNS, interactive=False, elem_id="tokens-table")
    state = gr.State(None)

    @ui_errors
    def show_tokens(text, names, hub, parse, ids, model):
        out = render_tokens(text, names, hub, parse, ids, model, limit)
        return out + out[-1:]  # one provenance for each table's badge

    inputs = [ctx.prompt, selected, hub_id, parse_special, show_ids, ctx.model]
    outputs = [state, counts, plot, chips, chat, which, table, counts_badge, table_badge]
    run.click(show_tokens, inputs, outputs, api_visibility="private")
    # tokenizing is cheap: follow the prompt as it is typed, restored from a link or set by a scene
    ctx.prompt.change(show_tokens, inputs, outputs, api_visibility="private", trigger_mode="always_last",
                      show_progress="minimal")
    Context.root_block.load(show_tokens, inputs, outputs, api_visibility="private")  # tokens of the opening prompt
    for control in (selected, parse_special, show_ids):
        control.change(show_tokens, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    which.change(lambda result, name: (token_table(result, name, limit), getattr(result, "provenance", None)),
                 [state, which], [table, table_badge], api_visibility="private")

    def tokenize_api(text: str, tokenizers: list[str] | None = None) -> dict:
        """JSON API: ``{"tokenizers": [{"name", "vocab_size", "count", "tokens": [{"id", "text", "bytes_hex",
        "start", "end"}]}]}``; ``tokenizers=None`` means the five offline tokenizers."""
        try:
            return tokens.to_api(tokens.run(text, tokenizers))
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(tokenize_api, api_name="tokenize")
    return {"selected": selected, "hub_id": hub_id, "parse_special": parse_special, "show_ids": show_ids, "run": run,
            "chips": chips, "counts": counts, "plot": plot, "chat": chat, "table": table, "state": state,
            "result": state}
