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
    Scene("Why perplexity", "Next token: the surprise of every token, its mean is the loss, exp of it is perplexity",
          {"tab": "next_token", "prompt": "The capital of France is Paris. The capital of Italy is Rome. The capital "
                                          "of Spain is Madrid.", "next_token.top_k": "10"}),
    Scene("Nine query heads, three KV heads", "Attention: grouped-query attention (GQA)",
          {"tab": "attention", "prompt": "The trophy did not fit in the suitcase because it was too big.",
           "attention.stat": "first_token", "attention.mode": "mean over KV group"}),
    Scene("Causal vs bidirectional", "Attention: a decoder masks the future, an encoder does not",
          {"tab": "attention", "model": "all-minilm-l6-v2", "prompt": "The bank raised interest rates again."}),
    Scene("The 70B KV cache", "KV cache: ~40 GB at 8K context in the handbook's example",
          {"tab": "kv_cache", "prompt": "Summarise the history of Rome.", "kv_cache.whatif_model": "Llama-3 70B",
           "kv_cache.whatif_context": "8192", "kv_cache.whatif_batch": "1", "kv_cache.whatif_cache_dtype": "fp32",
           "kv_cache.whatif_weight_dtype": "fp16", "kv_cache.whatif_kv_heads": "64"}),
    Scene("Why RoPE is relative", "Positions: shift query and key together and the score does not change",
          {"tab": "positions", "prompt": "The lighthouse keeper climbed the stairs to light the lamp.",
           "positions.pos_i": "2000", "positions.pos_j": "1000", "positions.offset": "4000"}),
    Scene("Temperature", "Decoding: 0 is greedy, 1 leaves the distribution, >1 flattens it",
          {"tab": "decoding", "prompt": "Write a one-line poem about the sea:", "decoding.temperature": "1.5"}),
    Scene("What 4 bits cost", "Quantisation: int8 vs NF4 vs FP4 on the same prompt",
          {"tab": "quantization", "prompt": "The three primary colours are",
           "quantization.methods": "reference,int8,nf4,fp4"}),
    Scene("Teach the model a fact", "LoRA: a live fine-tune on facts about a fictional place",
          {"tab": "lora", "prompt": "What is the capital of Veloria?", "lora.dataset_name": "Fictional facts (Veloria)",
           "lora.r": "16", "lora.steps": "30", "lora.qlora": "false"}),
    Scene("A person who does not exist", "Hallucination: confident answers about an invented entity",
          {"tab": "hallucination", "prompt": "In which year did the physicist Marten Olvaska win the Nobel Prize?"}),
    Scene("Does the answer come from the context?", "Hallucination: grounded vs ungrounded answers",
          {"tab": "hallucination", "prompt": "Who wrote the novel 'The Salt Orchard'?",
           "hallucination.context": "The Salt Orchard is a 1987 novel by the Welsh writer Carys Penhallow about a "
                                    "family of fruit growers on a flooded coast.",
           "hallucination.probes": "token_confidence,sequence,grounded"}),
    Scene("A room asks at once", "Serving: identical requests computed once, generations batched across users",
          {"tab": "serving", "prompt": "Write one sentence about the sea."}),
    Scene("Ground an answer in retrieved text", "Embeddings & RAG: a fact the model cannot know, with vs without retrieval",
          {"tab": "embeddings", "prompt": "Who founded Velmora?", "embeddings.question": "Who founded Velmora?",
           "embeddings.k": "1"}),
    Scene("One token through every lens", "Inspector: what ' Paris' attends to, its KV bytes, the prediction, the "
          "logit lens and what int8 / NF4 change",
          {"tab": "inspect", "prompt": "The capital of France is Paris", "inspect.position": "5"}),
    Scene("Does 'think step by step' help a small model?", "Prompting: chain of thought against zero-shot on "
          "arithmetic, with intervals (it emerged around 100B parameters); below, an agent calls tools the "
          "application runs",
          {"tab": "prompting", "prompt": "What is 29 + 11 - 6? Let's think step by step.", "prompting.task": "arithmetic", "prompting.pattern": "chain_of_thought",
           "prompting.limit": "6"}),
    Scene("Where does the answer live?", "Circuits: patch a clean run into a corrupted one, layer by position",
          {"tab": "circuits", "prompt": "When Mary and John went to the store, John gave a drink to",
           "circuits.pair": "names", "circuits.site": "resid", "circuits.components": "L17H3"}),
    Scene("Watch a model learn language", "Training & scale: a tiny Llama pretrained from random weights, gibberish "
          "becoming words, tokens per parameter against Chinchilla's ~20; scaling laws and a mixture of experts "
          "from runs made here",
          {"tab": "training", "prompt": "Once upon a time", "training.steps": "300", "training.d_model": "64",
           "training.layers": "2", "training.row": "warmup"}),
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
