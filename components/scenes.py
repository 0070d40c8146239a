"""Presenter scenes: one click opens the right tab with a prompt and settings for one concept.

Each scene is a set of URL parameters (see ``components.share``), so a scene and a shared link
restore a view the same way. Concepts and figures follow the project's concept handbook.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from components import share


@dataclass(frozen=True)
class Scene:
    """A ready-made view: ``title`` and ``concept`` for the gallery, ``params`` as URL parameters."""

    title: str
    concept: str
    params: dict[str, str] = field(default_factory=dict)


SCENES: list[Scene] = [
    Scene("Why is 'strawberry' hard to spell?", "Tokens: the model sees ids, not letters",
          {"tab": "tokens", "prompt": "How many times does the letter r appear in the word strawberry?"}),
    Scene("Same meaning, more tokens", "Tokens: non-English text and emoji cost more",
          {"tab": "tokens", "prompt": "Good morning! Guten Morgen! Доброе утро! おはようございます! صباح الخير 👋🌅"}),
    Scene("Nine query heads, three KV heads", "Attention: grouped-query attention (GQA)",
          {"tab": "attention", "prompt": "The trophy did not fit in the suitcase because it was too big.",
           "attention.stat": "first_token"}),
    Scene("Causal vs bidirectional", "Attention: a decoder masks the future, an encoder does not",
          {"tab": "attention", "model": "all-minilm-l6-v2", "prompt": "The bank raised interest rates again."}),
    Scene("The 70B KV cache", "KV cache: ~40 GB at 8K context in the handbook's example",
          {"tab": "kv_cache", "kv_cache.whatif_model": "Llama-2 70B", "prompt": "Summarise the history of Rome."}),
    Scene("Temperature", "Decoding: 0 is greedy, 1 leaves the distribution, >1 flattens it",
          {"tab": "decoding", "prompt": "Write a one-line poem about the sea:", "decoding.temperature": "1.5"}),
    Scene("What 4 bits cost", "Quantisation: int8 vs NF4 vs FP4 on the same prompt",
          {"tab": "quantization", "prompt": "The three primary colours are"}),
    Scene("Teach the model a fact", "LoRA: a live fine-tune on facts about a fictional place",
          {"tab": "lora", "prompt": "What is the capital of Veloria?"}),
    Scene("A person who does not exist", "Hallucination: confident answers about an invented entity",
          {"tab": "hallucination", "prompt": "In which year did the physicist Marten Olvaska win the Nobel Prize?"}),
    Scene("Does the answer come from the context?", "Hallucination: grounded vs ungrounded answers",
          {"tab": "hallucination", "prompt": "Who wrote the novel described in the context?"}),
]


def build_gallery():
    """The gallery of scenes (a ``gr.Dataset``); wired by :func:`wire_gallery` once tabs exist."""
    return gr.Dataset(components=[gr.Textbox(visible=False), gr.Textbox(visible=False)],
                      samples=[[s.title, s.concept] for s in SCENES], headers=["scene", "concept"],
                      type="index", label="Presenter scenes: click one to open its tab", elem_id="scenes",
                      samples_per_page=len(SCENES))


def wire_gallery(gallery, ctx, bar: dict, tab_keys: list[str]) -> None:
    """Clicking a scene fills the prompt, model and settings and opens its tab."""
    pairs = ctx.extra["_share_pairs"]

    def open_scene(index):
        if index is None or not 0 <= int(index) < len(SCENES):
            raise gr.Error("Unknown scene.")
        scene = SCENES[int(index)]
        params = dict(scene.params)
        params.setdefault("model", ctx.model.value)
        tab = params.get("tab")
        if tab not in tab_keys:
            raise gr.Error(f"The {tab} tab is not part of this build.")
        return share.apply_params(pairs, params, tab_keys) + [tab]

    gallery.click(open_scene, gallery, [ctx.tabs] + [c for _, c in pairs] + [bar["current_tab"]],
                  api_visibility="private")
