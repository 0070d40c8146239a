"""Limits and settings shared by every lens, in one frozen object.

Every cap can be overridden by an environment variable named
``LLM_EXPLORER_<FIELD_NAME_IN_CAPS>`` (for example ``LLM_EXPLORER_MAX_NEW_TOKENS=64``),
so a public Space can tighten them without touching code.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from functools import lru_cache

from models.settings import cache_dir, split_list  # noqa: F401  (cache_dir re-exported: models owns it)

ENV_PREFIX = "LLM_EXPLORER_"


@dataclass(frozen=True)
class Limits:
    """Caps applied to user requests.

    Fields (all ints unless stated):
        max_prompt_tokens: tokens a model lens accepts in one prompt.
        max_display_tokens: token chips drawn in the Tokens tab (counts stay exact).
        max_tokenize_chars: characters the tokenizer lens accepts (counts are exact up to this).
        max_new_tokens: tokens one generation may add.
        max_attention_tokens: tokens the attention detail views accept.
        max_attention_steps: generated tokens the attention timeline records (one attention row per step).
        max_samples: samples drawn by one probe.
        max_beams: beams in beam search.
        max_train_steps: optimiser steps in one LoRA run.
        max_dataset_bytes: bytes of a typed or uploaded dataset (bytes).
        max_run_seconds: wall-clock seconds one long task may run (float, seconds).
        max_adapter_bytes: bytes of an uploaded LoRA adapter file (bytes).
        max_probe_seconds: wall-clock seconds one hallucination probe may run (float, seconds).
        lora_idle_seconds: a LoRA run that no page has polled for this long stops (float, seconds); a reload
            within that time re-attaches to it.
        max_quantized_bytes: weight bytes of quantised model copies kept in memory at once (bytes);
            the least recently used copy is dropped beyond it.
        max_position_offset: positions the Positions tab may shift a passage or a query/key pair by (tokens).
        max_attention_cost_tokens: longest sequence the attention-cost measurement runs (tokens).
        max_score_tokens: tokens the Next token tab scores in one text (a longer text is windowed, with a notice).
        max_position_tokens: tokens of the built-in document scored for loss by position.
        max_needle_tokens: haystack length (tokens) of a live needle-in-a-haystack grid.
        max_needle_cells: cells (lengths x depths) of a live needle-in-a-haystack grid.
        queue_size: requests waiting in Gradio's queue before "busy" is answered.
        result_cache_bytes: bytes of finished results kept for identical requests (LRU; 0 turns the cache off).
        max_wait_seconds: seconds a request waits for a turn on the model before it ends with a "busy" message
            (float, seconds).
        max_requests_per_session: requests one browser session or client may have in flight at once.
        batch_blocks: KV cache blocks of the continuous-batching engine (each ``batch_page_size`` tokens for every
            layer), which bounds its memory.
        batch_page_size: tokens per block of the continuous-batching KV cache.
        batching: 1 runs greedy ``/generate`` requests through continuous batching, 0 one sequence at a time.
        concurrency: requests Gradio runs at once.
        hub_allow_list: comma-separated Hub ids allowed (empty = any valid id).
        zerogpu_max_seconds: longest GPU call one request asks ZeroGPU for (seconds); longer work (a LoRA run, a
            long generation) is split into calls that each fit.
        room_idle_seconds: a workshop room whose presenter has not been seen for this long ends (float, seconds).
        max_rooms: workshop rooms open at once on this server.
        room_poll_seconds: how soon a follower's page reconnects after its push connection dropped (float, seconds).
        max_talk_bytes: bytes of a talk file (exported room) written or read, uncompressed (bytes).
        prompting_max_items: test items one live prompting-pattern run scores (the stored table has them all).
        prompting_max_shots: few-shot examples (k) a prompt may hold.
        prompting_max_samples: sampled chains (N) one self-consistency item may draw.
        prompting_reasoning_tokens: tokens a chain-of-thought continuation may write before it is cut.
        benchmark_max_items: test items one live benchmark scoring run reads (4 options each).
        contamination_max_steps: optimiser steps of the contamination demo's LoRA run on leaked test items.
        room_max_followers: push connections (follower pages) one room serves at once.
        room_push_per_client: push connections one follower (a browser's client id) may hold at once.
        room_push_per_ip: push connections one IP address may hold at once, over all rooms (a classroom behind
            one NAT shares an address, so keep it above the audience size).
        room_push_bytes: bytes of one room's pushed payload (the presenter's view and shown result, JSON,
            uncompressed); a larger result is pushed without its biggest outputs, with a note.
        max_detector_tokens: random tokens per half of the head detector's repeated sequence (tokens).
        max_circuit_tokens: tokens of a Circuits prompt (patching, ablation, direct logit attribution).
        max_patch_cells: cells of one activation-patching grid (rows x columns); more are cut, with a notice.
        patch_batch: patched runs stacked in one forward pass of activation patching (rows of a batch).
        max_pretrain_steps: optimiser steps of one pretraining run (Training & scale tab).
        max_pretrain_layers: decoder layers of a pretraining model.
        max_pretrain_d_model: hidden size (d_model) of a pretraining model.
        max_pretrain_seq_len: training sequence length of a pretraining run (tokens).
        max_pretrain_batch_size: sequences per pretraining step.
        max_pretrain_runs: pretraining runs training at once on this server (the rest wait in a queue).
        pretrain_queue_size: pretraining runs that may wait for a slot; beyond it a new run is refused.
        room_guess_chars: characters of one guess in a room's "guess the next token" (stripped).
        room_question_chars: characters of the prompt a room's question is opened on.
        room_note_chars: characters (Markdown) of a presenter's note on one tab; a longer note is cut.
        step_batching: 1 lets concurrent plain decodes (``Engine.steps(share=True)``: ``/decode``, hallucination
            answers and samples, RAG answers) share one forward pass per step, 0 runs each alone.
        step_gather_ms: longest a shared step waits for the rows still choosing their token, counted from the
            pass that delivered their logits (float, milliseconds); a request alone never waits.
        step_concurrency: ``/decode`` requests Gradio runs at once (their steps share passes, so this may exceed
            ``concurrency``; a session is still held to ``max_requests_per_session``).
        max_branches: branches one session's branch tree keeps (the oldest are pruned beyond it).
        max_steer_texts: texts on each side of a steering-vector pair (more are cut, with a notice).
        room_push_inline_bytes: a new result up to this size (JSON, bytes) travels inside the push event itself,
            so followers draw it with no request of their own; a bigger one is announced and fetched once per
            follower (``/room_push/CODE/payload``).
        max_moe_steps: optimiser steps of one ``/moe_compare`` run (each of its two or three models).
        max_moe_experts: experts of the tiny mixture-of-experts model.
        max_moe_d_model: hidden size (d_model) of the ``/moe_compare`` models.
        max_sweep_cells: strength × layer cells one steering sweep runs (each a row of one batch; more is refused).
        calc_max_chars: characters of one calculator expression (the agents' ``calculator`` tool).
        calc_max_depth: nesting depth of a calculator expression tree (operators and parentheses).
        calc_max_exponent: largest absolute exponent a calculator ``**`` accepts.
        calc_max_digits: decimal digits of a calculator result (numerator or denominator); a larger one is refused.
        agent_max_steps: think -> act -> observe steps one agent run may take.
        agent_step_tokens: tokens the model may write in one agent step (a call or an answer).
        injection_max_items: attack items one live prompt-injection or jailbreak measurement runs.
        critique_tokens: tokens of each answer, critique and revision of a constitutional self-critique.
    """

    max_prompt_tokens: int = 2048
    max_display_tokens: int = 2000
    max_tokenize_chars: int = 1_000_000
    max_new_tokens: int = 256
    max_attention_tokens: int = 512
    max_attention_steps: int = 64
    max_samples: int = 10
    max_beams: int = 8
    max_train_steps: int = 300
    max_dataset_bytes: int = 1_000_000
    max_run_seconds: float = 600.0
    max_adapter_bytes: int = 200_000_000
    max_probe_seconds: float = 60.0
    lora_idle_seconds: float = 300.0
    max_quantized_bytes: int = 4 * 2**30
    max_position_offset: int = 1_000_000
    max_attention_cost_tokens: int = 2048
    max_score_tokens: int = 2048
    max_position_tokens: int = 2048
    max_needle_tokens: int = 1024
    max_needle_cells: int = 16
    queue_size: int = 64
    result_cache_bytes: int = 256 * 2**20
    max_wait_seconds: float = 120.0
    max_requests_per_session: int = 3
    batch_blocks: int = 64
    batch_page_size: int = 64
    batching: int = 1
    concurrency: int = 4
    hub_allow_list: tuple[str, ...] = ()
    zerogpu_max_seconds: int = 120
    room_idle_seconds: float = 1800.0
    max_rooms: int = 200
    room_poll_seconds: float = 1.0
    max_talk_bytes: int = 64 * 2**20
    prompting_max_items: int = 12
    prompting_max_shots: int = 8
    prompting_max_samples: int = 8
    prompting_reasoning_tokens: int = 64
    benchmark_max_items: int = 52
    contamination_max_steps: int = 80
    room_max_followers: int = 500
    room_push_per_client: int = 4
    room_push_per_ip: int = 600
    room_push_bytes: int = 16 * 2**20
    max_detector_tokens: int = 500
    max_circuit_tokens: int = 64
    max_patch_cells: int = 1024
    patch_batch: int = 32
    max_pretrain_steps: int = 2000
    max_pretrain_layers: int = 8
    max_pretrain_d_model: int = 256
    max_pretrain_seq_len: int = 256
    max_pretrain_batch_size: int = 64
    max_pretrain_runs: int = 1
    pretrain_queue_size: int = 4
    room_guess_chars: int = 40
    room_question_chars: int = 2000
    room_note_chars: int = 2000
    step_batching: int = 1
    step_gather_ms: float = 50.0
    step_concurrency: int = 16
    max_branches: int = 64
    max_steer_texts: int = 16
    room_push_inline_bytes: int = 512 * 2**10
    max_moe_steps: int = 300
    max_moe_experts: int = 16
    max_moe_d_model: int = 256
    max_sweep_cells: int = 48
    calc_max_chars: int = 200
    calc_max_depth: int = 24
    calc_max_exponent: int = 256
    calc_max_digits: int = 200
    agent_max_steps: int = 6
    agent_step_tokens: int = 64
    injection_max_items: int = 8
    critique_tokens: int = 48


def _parse(field: dataclasses.Field, raw: str):
    if field.type in ("int", int):
        return int(raw)
    if field.type in ("float", float):
        return float(raw)
    return split_list(raw)


@lru_cache(maxsize=1)
def get_limits() -> Limits:
    """Return the process-wide :class:`Limits`, read once from the environment.

    Raises:
        ValueError: an environment variable holds a value of the wrong type.
    """
    overrides = {}
    for field in fields(Limits):
        raw = os.environ.get(ENV_PREFIX + field.name.upper())
        if raw is None or raw == "":
            continue
        try:
            overrides[field.name] = _parse(field, raw)
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}{field.name.upper()}={raw!r} is not valid: {exc}") from exc
    return Limits(**overrides)


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_DIR = os.path.join(REPO_ROOT, "data")


def data_path(*parts: str) -> str:
    """Path of a shipped data file: ``data_path("hallucination", "questions.json")`` -> ``<repo>/data/hallucination/questions.json``."""
    return os.path.join(DATA_DIR, *parts)
