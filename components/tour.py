"""A tour for a visitor alone: the presenter scenes in order, a short text each, Back and Next.

Each step opens its scene exactly as a click in the scenes gallery does (``components.scenes``: tab, prompt,
model and settings through ``components.share.apply_params``) and then presses that tab's Run button in the
page (``#<key>-run``), so the scene shows its point with a result, served from the result cache when the scenes
were computed at start (``components.serving.warm_scenes``). The texts say what to look at; every scene in
:data:`components.scenes.SCENES` has one (``tests/components/test_tour.py``).
"""
from __future__ import annotations

import gradio as gr

from components import share
from components.scenes import SCENES

TEXTS: dict[str, str] = {
    "Why is 'strawberry' hard to spell?": "The model never sees letters: it sees token ids. Look at how "
    "'strawberry' is cut into pieces; counting the r's means knowing what is inside each piece.",
    "Same meaning, more tokens": "The same greeting in several languages and emoji: compare the token counts. "
    "Text far from the tokenizer's training mix costs more tokens, so more compute and context.",
    "Why perplexity": "Every token gets a probability from the model. The mean surprise (-log p) is the loss; "
    "perplexity is its exponential. Find the tokens the model expected and the ones that surprised it.",
    "Nine query heads, three KV heads": "Grouped-query attention: several query heads share one key/value head, "
    "which shrinks the KV cache. Compare the heads of one group with each other.",
    "Causal vs bidirectional": "A decoder may only look back (the upper triangle is empty); an encoder such as "
    "MiniLM looks both ways. Compare the attention map's shape with a decoder's.",
    "The 70B KV cache": "The KV cache grows with layers, KV heads, head size, context and batch. Here the "
    "what-if calculator sizes it for a 70B model at 8K context: see where the bytes go.",
    "Why RoPE is relative": "Rotary position embeddings rotate queries and keys by their position; shifting both "
    "by the same offset leaves their dot product unchanged, so attention sees relative distance.",
    "Temperature": "Temperature divides the logits before the softmax: low values sharpen the distribution "
    "(0 is greedy), high values flatten it. Watch the text get more adventurous.",
    "What 4 bits cost": "The same prompt through int8, NF4 and FP4 weights: compare the next-token "
    "distributions and the memory each one saves against the full-precision reference.",
    "Teach the model a fact": "A small LoRA adapter trained live on facts about a fictional place: the base "
    "model does not know them, the adapter does after a few steps. Only the adapter is trained.",
    "A person who does not exist": "Ask about an invented physicist: a small model often answers fluently "
    "anyway. The probes show how confident it was while making it up.",
    "Does the answer come from the context?": "With a passage given, the answer can be checked against it: "
    "compare the grounded probe with the confidence-only ones.",
    "A room asks at once": "When many people ask the same thing, identical requests are computed once and "
    "generations are batched across users. See what one server does for a whole room.",
    "Ground an answer in retrieved text": "The model cannot know a fact about a made-up town; retrieval puts "
    "the right passage in the prompt. Compare the answer with and without it.",
    "One token through every lens": "Follow one token, ' Paris', through attention, its KV-cache bytes, the "
    "prediction, the logit lens and quantisation, all on one page.",
    "Does 'think step by step' help a small model?": "Ask the same arithmetic questions zero-shot and with chain of "
    "thought, and read each answer. A 135M model rarely gains: the trick emerged in far larger models. Further "
    "down, an agent writes tool calls that the application, not the model, runs.",
    "Where does the answer live?": "Copy one layer at one position from a run with the right name into a run with "
    "the wrong one, and see which cells bring the right answer back.",
    "Watch a model learn language": "A model of a hundred thousand parameters starts from random weights. Watch "
    "its loss fall and its samples turn from gibberish into words as the steps go by. Further down, scaling "
    "laws fitted to runs made on this machine split a compute budget between size and data, beside Chinchilla's.",
}


def step_text(index: int) -> str:
    """The Markdown of tour step ``index`` (0-based): "Step i of N", the scene's title, concept and text.

    Raises:
        ValueError: ``index`` outside ``0 .. len(SCENES) - 1``.
    """
    if not 0 <= index < len(SCENES):
        raise ValueError(f"index: the tour has steps 0 to {len(SCENES) - 1} (got {index})")
    scene = SCENES[index]
    return (f"**Step {index + 1} of {len(SCENES)}: {scene.title}** · *{scene.concept}*\n\n"
            f"{TEXTS.get(scene.title, '')}")


def build() -> dict:
    """The tour's accordion: the step's text, Back and Next (wired by :func:`wire`)."""
    parts: dict = {}
    with gr.Accordion("Take the tour (no presenter needed)", open=False, elem_id="tour-box"):
        parts["text"] = gr.Markdown("Press **Next** to walk through the presenter scenes one by one; each opens "
                                    "its tab with a prompt and runs it.", elem_id="tour-text")
        with gr.Row():
            parts["back"] = gr.Button("◀ Back", size="sm", elem_id="tour-back", scale=0, min_width=100)
            parts["next"] = gr.Button("Next ▶", size="sm", elem_id="tour-next", scale=0, min_width=100)
    parts["step"] = gr.Number(-1, visible=False, precision=0, elem_id="tour-step")
    return parts


_RUN_JS = """(step) => { const key = __KEYS__[step];
  if (key === undefined) return;
  let tries = 0;
  const press = () => {  // after the tab is shown and the scene's settings have landed
    const panel = document.querySelector('#tab-' + key);
    const button = document.querySelector('#' + key + '-run');
    if (panel && button && panel.offsetParent !== null) { button.click(); return; }
    if (++tries < 50) setTimeout(press, 200);
  };
  setTimeout(press, 300);
}"""


def wire(parts: dict, ctx, bar: dict, tab_keys: list[str]) -> None:
    """Back and Next: the step's text, its scene's settings and tab, then its tab's Run pressed in the page."""
    import json

    pairs = ctx.extra["_share_pairs"]
    outputs = [parts["step"], parts["text"], ctx.tabs] + [c for _, c in pairs] + [bar["current_tab"]]

    def go(step, delta):
        index = min(max(int(step if step is not None else -1) + delta, 0), len(SCENES) - 1)
        params = dict(SCENES[index].params)
        params.setdefault("model", ctx.model.value)
        tab = params.get("tab")
        if tab not in tab_keys:  # a scene whose tab is not in this build: say so, keep the page as it is
            return [index, step_text(index) + f"\n\n*(The {tab} tab is not part of this build.)*"] + \
                [gr.update()] * (len(outputs) - 2)
        return [index, step_text(index)] + share.apply_params(pairs, params, tab_keys) + [tab]

    run_js = _RUN_JS.replace("__KEYS__", json.dumps([s.params.get("tab") for s in SCENES]))
    for button, delta in ((parts["next"], 1), (parts["back"], -1)):
        button.click(lambda step, d=delta: go(step, d), parts["step"], outputs, queue=False,
                     api_visibility="private").then(None, parts["step"], None, js=run_js)
