"""Opening the token inspector from any tab: a click on a token sets the Inspector's position and switches to it.

:func:`wire_token_clicks` wires the token displays of the tabs built before the Inspector, found in
``ctx.extra``: the Tokens tab's chips (a click in the model's own tokenizer column, through a delegated page
listener), the Next token tab's chips (their select event) and the Attention tab's detail heatmap (a click on a
query row). The Inspector tab (``components/tabs/inspect/``) reads the position from the analysis that
``explorer.inspect`` computes once per (text, model, chat template), so a second click never runs the model.
A tab that shows tokens joins with one more line here: its click writes ``"<source>,<column>,<index>,<time>"``
through ``window.__inspectSend`` or its ``select`` event goes to :func:`from_select`.
"""
from __future__ import annotations

import gradio as gr
from gradio.context import Context

from components.errors import ui_errors

TAB_KEY = "inspect"

# Delegated click listener (works for chips drawn later): a chip of the Tokens tab writes
# "tokens,<tokenizer column>,<chip index>,<time>" into the page-level hidden #inspect-click box.
CLICK_JS = """() => {
  if (window.__inspectSend) return;
  const send = (source, block, index) => {
    const box = document.querySelector('#inspect-click textarea, #inspect-click input');
    if (!box) return;
    box.value = source + ',' + block + ',' + index + ',' + Date.now();
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  window.__inspectSend = send;
  document.addEventListener('click', (ev) => {
    const chip = ev.target.closest ? ev.target.closest('#tokens-chips .tok-chip') : null;
    if (!chip) return;
    const block = chip.closest('.tok-block');
    const blocks = Array.from(document.querySelectorAll('#tokens-chips .tok-block'));
    send('tokens', blocks.indexOf(block), Array.from(block.querySelectorAll('.tok-chip')).indexOf(chip));
  });
}"""

# Attached whenever the Attention tab redraws its detail heatmap: a click on a cell inspects its query row.
ATTENTION_JS = """() => {
  let tries = 0;
  const attach = () => {
    const el = document.querySelector('#attention-detail-plot .js-plotly-plot');
    if (!el || !el.on) { if (tries++ < 50) setTimeout(attach, 200); return; }
    if (el.__inspectClick) return;
    el.__inspectClick = true;
    el.on('plotly_click', (ev) => {
      const pt = ev.points && ev.points[0];
      if (!pt || !Array.isArray(pt.pointNumber) || !window.__inspectSend) return;
      window.__inspectSend('attention', 0, pt.pointNumber[0]);
    });
  };
  attach();
}"""

def _plain_offset(text: str, model: str | None) -> int:
    """Tokens the model's tokenizer adds in front of the plain text (a BOS token: Gemma), which the Tokens tab's
    chips leave out."""
    from explorer.core.engine import get_engine

    tok = get_engine(model).tokenizer
    full, plain = tok(text)["input_ids"], tok(text, add_special_tokens=False)["input_ids"]
    return len(full) - len(plain) if plain and list(full[len(full) - len(plain):]) == list(plain) else 0


@ui_errors
def from_click(value, text, model, tokens_result):
    """A click written by the page's JS: ``"tokens,<column>,<index>,<time>"`` or ``"attention,0,<row>,<time>"``."""
    parts = (value or "").split(",")
    if len(parts) < 3:
        raise ValueError("Click a token to inspect it.")
    source, block, index = parts[0], int(parts[1]), int(parts[2])
    if source == "tokens":
        columns = [r.name for r in tokens_result.results] if tokens_result is not None else []
        name = columns[block] if 0 <= block < len(columns) else "?"
        if name != (model or ""):
            raise ValueError(f"The inspector follows the model's own tokens: click a chip in the {model} column "
                             f"(this one is {name}).")
        index += _plain_offset(text, model)
    return index, False, gr.Tabs(selected=TAB_KEY)


def from_select(evt: gr.SelectData):
    """The Next token tab's chips: the selected chip's index is the position."""
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    return int(index), False, gr.Tabs(selected=TAB_KEY)


def wire_token_clicks(ctx, position, chat, inspect_fn, inputs, outputs) -> gr.Textbox:
    """Make token clicks in earlier tabs set ``position`` / ``chat``, switch to the Inspector and run ``inspect_fn``.

    Returns the hidden page-level textbox the page's JS writes clicks into (``#inspect-click``).
    """
    clicked = gr.Textbox(visible="hidden", elem_id="inspect-click", render=False)
    ctx.page_level.append(clicked)  # mounted with the page, so a click works before the Inspector was opened
    opened = [position, chat, ctx.tabs]
    tokens_state = ctx.extra.get("tokens", {}).get("result") or gr.State(None)
    clicked.change(from_click, [clicked, ctx.prompt, ctx.model, tokens_state], opened).success(
        inspect_fn, inputs, outputs, concurrency_id="inspect-model")
    chips = ctx.extra.get("next_token", {}).get("chips")
    if chips is not None:
        chips.select(from_select, None, opened).success(inspect_fn, inputs, outputs, concurrency_id="inspect-model")
    detail = ctx.extra.get("attention", {}).get("detail")
    if detail is not None:
        detail.change(None, None, None, js=ATTENTION_JS)
    if Context.root_block is not None:
        Context.root_block.load(None, None, None, js=CLICK_JS)
    return clicked
