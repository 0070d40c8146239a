"""Frozen results of the Decoding lens: one :class:`DecodeRun` per strategy, with the per-step records
that produced its text (step records for greedy/sampling, a beam tree for beam search).

Everything is numpy (no torch), so results can live in ``gr.State`` and figures re-render from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.core.provenance import Provenance


@dataclass(frozen=True)
class StepRecords:
    """What happened to the next-token distribution at each step of one greedy/sampled run.

    Attributes:
        top_ids: (steps, top_n) int64, the top_n tokens by raw probability at each step.
        raw_probs: (steps, top_n) float32, their probabilities from the raw fp32 logits (softmax).
        stage_names: labels of the logits processors applied, in order (e.g. ``temperature``, ``top-p``).
        stage_probs: (steps, num_stages, top_n) float32, the top_n tokens' probabilities after each stage,
            renormalised over the tokens the stage keeps (0 = removed).
        stage_kept: (steps, num_stages) int64, how many vocabulary tokens remain allowed after each stage.
        chosen_ids: (steps,) int64, the token picked at each step (equals the run's ``token_ids``).
        chosen_raw_probs: (steps,) float32, the raw probability of the picked token.
        chosen_final_probs: (steps,) float32, its probability in the distribution it was drawn from.
        entropy_nats: (steps,) float32, entropy of the raw distribution (nats).
        vocab_size: number of tokens in the full distribution.
    """

    top_ids: np.ndarray
    raw_probs: np.ndarray
    stage_names: tuple[str, ...]
    stage_probs: np.ndarray
    stage_kept: np.ndarray
    chosen_ids: np.ndarray
    chosen_raw_probs: np.ndarray
    chosen_final_probs: np.ndarray
    entropy_nats: np.ndarray
    vocab_size: int

    @property
    def num_steps(self) -> int:
        """Number of generation steps recorded."""
        return int(self.chosen_ids.shape[0])


@dataclass(frozen=True)
class BeamRecords:
    """The beam-search tree: at each step the candidates considered and which survived.

    Step ``t`` considers ``K = 2 * num_beams`` candidates (transformers keeps that many so enough beams
    survive sequences that end). Attributes:
        num_beams: beams kept per step.
        cand_parent: (steps, K) int64, index of the parent candidate at step ``t-1`` (-1 at step 0).
        cand_token: (steps, K) int64, the token each candidate appends.
        cand_score: (steps, K) float32, its cumulative (processed) log-probability.
        cand_finished: (steps, K) bool, True when the candidate ended (end-of-sequence or the length limit).
        running: (steps, num_beams) int64, the candidates kept as running beams for the next step.
        winner: (num_steps_of_winner,) int64, candidate index at each step along the returned sequence.
        winner_score: the returned sequence's length-penalised score (``sequences_scores`` in transformers).
        length_penalty: the exponent used, score / length ** length_penalty.
    """

    num_beams: int
    cand_parent: np.ndarray
    cand_token: np.ndarray
    cand_score: np.ndarray
    cand_finished: np.ndarray
    running: np.ndarray
    winner: np.ndarray
    winner_score: float
    length_penalty: float


@dataclass(frozen=True)
class DecodeRun:
    """One strategy's output.

    Attributes:
        strategy: registry name (``greedy``, ``beam``, ``sampling``).
        label: short human label of strategy and settings.
        params: resolved parameters (``GenerationConfig`` names).
        seed: the seed of a sampled run, else ``None``.
        text: the generated text (special tokens removed).
        token_ids: (n,) int64, generated ids (end-of-sequence included when produced).
        token_texts: the text of each generated token.
        token_logprobs: (n,) float32, the model's raw log-probability (natural log) of each chosen token.
        seconds: wall time of the run (seconds, recording included).
        loop_start: index of the first generated token that repeats an earlier period (looping), or None.
        steps: per-step records (greedy/sampling), or None.
        beam: beam tree (beam search), or None.
    """

    strategy: str
    label: str
    params: dict
    seed: int | None
    text: str
    token_ids: np.ndarray
    token_texts: tuple[str, ...]
    token_logprobs: np.ndarray
    seconds: float
    loop_start: int | None
    steps: StepRecords | None = None
    beam: BeamRecords | None = None

    @property
    def sequence_logprob(self) -> float:
        """Sum of ``token_logprobs`` (nats)."""
        return float(np.sum(self.token_logprobs, dtype=np.float64))

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of wall time (tokens/s)."""
        return len(self.token_ids) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class DecodeResult:
    """All runs on one prompt.

    Attributes:
        model: model name.
        prompt_ids: (prompt_len,) int64, the prompt after the chat template.
        runs: one :class:`DecodeRun` per strategy, in the order given.
        first_logits: (vocab,) float32, raw next-token logits after the prompt (for the temperature view).
        vocab_text: dict id -> text for every token id the figures show (records and the top of first_logits).
        notices: human-readable notices (capped or clamped values).
        provenance: where the numbers come from (measured on the model).
    """

    model: str
    prompt_ids: np.ndarray
    runs: tuple[DecodeRun, ...]
    first_logits: np.ndarray
    vocab_text: dict = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    provenance: Provenance | None = None

    def to_api(self) -> dict:
        """The JSON answer of ``/decode``: ``{"runs": [{"strategy", "params", "seed", "text", "token_ids",
        "token_logprobs", "seconds"}], "notices": [...], "provenance": {...}}`` with plain Python types."""
        runs = [{"strategy": r.strategy, "params": dict(r.params), "seed": r.seed, "text": r.text,
                 "token_ids": [int(i) for i in r.token_ids], "token_logprobs": [float(x) for x in r.token_logprobs],
                 "seconds": float(r.seconds)} for r in self.runs]
        return {"runs": runs, "notices": list(self.notices),
                "provenance": self.provenance.to_api() if self.provenance else None}
