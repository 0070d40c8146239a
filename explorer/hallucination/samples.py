"""Agreement across samples: N seeded sampled answers, clustered by meaning, and their semantic entropy.

Follows Kuhn, Gal & Farquhar 2023 (semantic entropy) and Farquhar et al. 2024 (Nature, "discrete"
semantic entropy from cluster counts). Meaning is compared with the MiniLM sentence embedder plus a
normalised exact match, instead of the papers' bidirectional entailment model: two answers share a
cluster when their normalised texts are equal or their embeddings' cosine similarity is at least
``SIMILARITY_THRESHOLD``. Cluster probabilities are counts / N, so they sum to 1 and the entropy lies
between 0 (all samples agree) and log N (all differ).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from explorer.hallucination.answer import _cut, normalise, prompt_ids, stop_ids

SIMILARITY_THRESHOLD = 0.9
# Sampling settings: the common default temperature 0.7 with top-p 0.95 (see the concept handbook).
TEMPERATURE = 0.7
TOP_P = 0.95


@dataclass(frozen=True)
class SampleClusters:
    """Sampled answers grouped by meaning.

    Attributes:
        samples: the N sampled answer texts.
        cluster_of: ``np.ndarray`` (N,) int, the cluster index of each sample (0 = first cluster seen).
        cluster_probs: ``np.ndarray`` (n_clusters,), counts / N, sums to 1.
        representatives: the first sample text of each cluster.
        semantic_entropy: ``-sum p log p`` over clusters, nats, in [0, log N].
        greedy_agreement: fraction of samples in the same meaning as the greedy answer (``nan`` if none given).
        similarity: ``np.ndarray`` (N, N) cosine similarity of the samples' MiniLM embeddings.
        seed: the random seed used; temperature / top_p: sampling settings.
        elapsed_ms: wall time of sampling and clustering, ms.
        stopped_by_time: True when the time cap cut the sampling short.
    """

    samples: list
    cluster_of: np.ndarray
    cluster_probs: np.ndarray
    representatives: list
    semantic_entropy: float
    greedy_agreement: float
    similarity: np.ndarray
    seed: int
    temperature: float
    top_p: float
    elapsed_ms: float
    stopped_by_time: bool = False


def entropy(probs) -> float:
    """Shannon entropy ``-sum p log p`` in nats of a probability vector (zeros ignored)."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    return max(0.0, float(-(p * np.log(p)).sum())) if p.size else 0.0


def _same(i: int, j: int, texts: list[str], sim: np.ndarray, threshold: float) -> bool:
    a, b = normalise(texts[i]), normalise(texts[j])
    return a == b or sim[i, j] >= threshold


def cluster(texts: list[str], similarity: np.ndarray | None = None,
            threshold: float = SIMILARITY_THRESHOLD) -> np.ndarray:
    """Greedy clustering by meaning: each text joins the first cluster whose first member it matches.

    Args:
        texts: N answers.
        similarity: (N, N) cosine similarities; computed with MiniLM when ``None``.
    Returns:
        ``np.ndarray`` (N,) int cluster index per text, numbered in order of first appearance.
    """
    if similarity is None:
        from models.embedder import embed

        vectors = embed(texts)
        similarity = vectors @ vectors.T
    labels = np.full(len(texts), -1, dtype=np.int64)
    heads: list[int] = []
    for i in range(len(texts)):
        for c, head in enumerate(heads):
            if _same(i, head, texts, similarity, threshold):
                labels[i] = c
                break
        else:
            labels[i] = len(heads)
            heads.append(i)
    return labels


def cluster_answers(samples: list[str], greedy: str | None = None, threshold: float = SIMILARITY_THRESHOLD,
                    seed: int = 0, temperature: float = TEMPERATURE, top_p: float = TOP_P,
                    elapsed_ms: float = 0.0, stopped_by_time: bool = False) -> SampleClusters:
    """Cluster ``samples`` by meaning and compute the discrete semantic entropy (Farquhar et al. 2024).

    Raises:
        ValueError: no samples.
    """
    if not samples:
        raise ValueError("No sampled answers to compare.")
    from models.embedder import embed

    texts = list(samples) + ([greedy] if greedy is not None else [])
    vectors = embed(texts)
    sim = vectors @ vectors.T
    n = len(samples)
    labels = cluster(samples, sim[:n, :n], threshold)
    counts = np.bincount(labels)
    probs = counts / counts.sum()
    agreement = float("nan")
    if greedy is not None:
        agreement = float(np.mean([_same(n, i, texts, sim, threshold) for i in range(n)]))
    reps = [samples[int(np.argmax(labels == c))] for c in range(len(counts))]
    return SampleClusters(samples=list(samples), cluster_of=labels, cluster_probs=probs, representatives=reps,
                          semantic_entropy=entropy(probs), greedy_agreement=agreement, similarity=sim[:n, :n],
                          seed=seed, temperature=temperature, top_p=top_p, elapsed_ms=elapsed_ms,
                          stopped_by_time=stopped_by_time)


def sampler(seed: int, temperature: float = TEMPERATURE, top_p: float = TOP_P):
    """A ``select(logits (vocab,), step) -> token id`` for :meth:`Engine.steps` that samples with temperature and
    nucleus (top-p, Holtzman et al. 2020) filtering, using transformers' own logits warpers, from a private
    CPU ``torch.Generator`` seeded with ``seed`` (the global RNG is never read or seeded)."""
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    generator = torch.Generator().manual_seed(int(seed))
    warpers = [TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)]

    def select(logits, _step: int) -> int:
        scores = logits.float().unsqueeze(0)
        for warp in warpers:
            scores = warp(None, scores)
        return int(torch.multinomial(torch.softmax(scores, dim=-1)[0], 1, generator=generator))

    return select


def sample_answers(engine, question: str, n_samples: int = 5, seed: int = 0, context: str | None = None,
                   max_new_tokens: int = 16, max_seconds: float | None = None,
                   temperature: float = TEMPERATURE, top_p: float = TOP_P) -> tuple[list[str], bool]:
    """Draw ``n_samples`` answers one after the other with :meth:`Engine.steps` (one locked pass per token).

    Every sample draws from one private generator seeded with ``seed`` (:func:`sampler`), so the same seed gives
    the same samples and nothing leaks into other users' requests, on CPU and CUDA alike.

    Returns:
        ``(texts, stopped_by_time)``: answer strings (cut at end-of-turn or newline); fewer than ``n_samples``
        when ``max_seconds`` ran out (then ``stopped_by_time`` is True).
    Raises:
        ValueError: empty question, too long a prompt, or ``n_samples < 1``.
    """
    if n_samples < 1:
        raise ValueError("Ask for at least one sample.")
    ids = prompt_ids(engine, question, context)
    stops = set(stop_ids(engine))
    select = sampler(seed, temperature, top_p)
    start = time.perf_counter()
    texts, stopped = [], False
    for _ in range(int(n_samples)):
        tokens = []
        for step in engine.steps(ids, max_new_tokens, select=select, eos_ids=stops, share=True):
            tokens.append(step.token)
            if step.finished or "\n" in engine.tokenizer.decode([step.token]):
                break
            if max_seconds and time.perf_counter() - start > max_seconds:
                stopped = True
                break
        n = _cut(engine, tokens)
        texts.append(engine.tokenizer.decode(tokens[:n], skip_special_tokens=True).strip())
        if stopped or (max_seconds and time.perf_counter() - start > max_seconds and len(texts) < n_samples):
            stopped = True
            break
    return texts, stopped


def run_samples(engine, question: str, greedy: str | None, n_samples: int = 5, seed: int = 0,
                context: str | None = None, max_seconds: float | None = None) -> SampleClusters:
    """Sample, cluster and score: the "agreement across samples" probe.

    Raises:
        ValueError: see :func:`sample_answers`.
    """
    start = time.perf_counter()
    samples, stopped = sample_answers(engine, question, n_samples, seed, context, max_seconds=max_seconds)
    return cluster_answers(samples, greedy, seed=seed, elapsed_ms=(time.perf_counter() - start) * 1000,
                           stopped_by_time=stopped)


def max_entropy(n_samples: int) -> float:
    """Largest possible semantic entropy for N samples: ``log N`` nats."""
    return math.log(n_samples) if n_samples > 0 else 0.0
