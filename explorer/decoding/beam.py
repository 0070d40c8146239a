"""Beam search that records its tree: every candidate considered at every step, the beams kept, the winner.

The algorithm is transformers' vectorised beam search (``GenerationMixin._beam_search``, v5) for one
prompt, written out step by step so that each step can be recorded: keep ``K = 2 * num_beams``
top continuations of all running beams by cumulative log-probability, continue the best ``num_beams``
that did not end, move ended ones (end-of-sequence or length limit) into the finished pool with the
length-penalised score ``sum_logprob / generated_len ** length_penalty``, and stop with generate()'s
``early_stopping=False`` heuristic. The tests check that it returns the ids of
``model.generate(num_beams=..., length_penalty=...)``.

Sources: Graves 2012 / Sutskever et al. 2014 (beam search for sequence models); Wu et al. 2016 (length
normalisation); transformers PR #20901 (the early-stopping heuristic).

Beam search keeps its own expansion (all beams in one batched pass) on top of ``Engine.forward``: one
locked forward pass per step, the device synchronised before the clock is read.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from explorer.decoding.processors import build_processors
from explorer.decoding.results import BeamRecords

NEG = -1.0e9  # transformers' "impossible" score


@dataclass(frozen=True)
class BeamOutput:
    """What :func:`beam_search` returns.

    Attributes:
        token_ids: the winning sequence's generated ids (end-of-sequence included when produced).
        token_logprobs: (n,) float32, raw log-probability of each of its tokens given its prefix.
        seconds: wall time (seconds).
        first_logits: (vocab,) float32, raw next-token logits after the prompt.
        records: the :class:`BeamRecords` tree.
    """

    token_ids: list
    token_logprobs: np.ndarray
    seconds: float
    first_logits: np.ndarray
    records: BeamRecords


def beam_search(engine, prompt_ids: list[int], strategy, max_new_tokens: int, on_step=None) -> BeamOutput:
    """Beam search over ``strategy.params["num_beams"]`` beams with a KV cache, recording the tree.

    ``strategy`` is a :class:`explorer.decoding.strategies.Strategy`. Processors (repetition penalty, no-repeat n-gram) are applied to the log-softmax as in generate().
    The model's lock is taken once per step (one batched forward pass over all beams).

    Returns:
        :class:`BeamOutput`.
    """
    import torch
    from transformers import DynamicCache

    num_beams = int(strategy.params["num_beams"])
    length_penalty = float(strategy.params["length_penalty"])
    processors = [p for _, p in build_processors(strategy)]
    device = engine.device
    stop = torch.tensor(sorted(engine.eos_token_ids()), dtype=torch.long, device=device)
    keep = max(2, 1 + len(stop)) * num_beams
    prompt_len = len(prompt_ids)
    max_length = prompt_len + max_new_tokens
    top_mask = torch.arange(keep, device=device) < num_beams

    running = torch.tensor([prompt_ids] * num_beams, dtype=torch.long, device=device)
    running_raw = torch.zeros((num_beams, 0), dtype=torch.float32, device=device)
    running_scores = torch.full((num_beams,), NEG, dtype=torch.float32, device=device)
    running_scores[0] = 0.0
    running_origin = [-1] * num_beams  # candidate index (previous step) each running beam came from
    fin_scores = torch.full((num_beams,), NEG, dtype=torch.float32, device=device)
    fin_done = torch.zeros(num_beams, dtype=torch.bool, device=device)
    fin_items: list = [None] * num_beams  # (ids tensor, raw logprobs tensor, (step, candidate))
    unsatisfied = True
    cache, step_input = DynamicCache(config=engine.config), running
    rec = {k: [] for k in ("parent", "token", "score", "finished", "running")}
    first_logits = None
    start = time.perf_counter()
    step = 0
    while True:
        logits = engine.forward(step_input, past_key_values=cache, use_cache=True,
                                logits_to_keep=1).logits[:, -1].to(dtype=torch.float32, copy=True)
        if first_logits is None:
            first_logits = logits[0].cpu().numpy()
        raw = torch.log_softmax(logits, dim=-1)
        log_probs = raw
        for processor in processors:
            log_probs = processor(running, log_probs)
        vocab = log_probs.shape[-1]
        accumulated = (log_probs + running_scores[:, None]).reshape(-1)
        topk_scores, topk_index = torch.topk(accumulated, k=keep)
        parent_beam, tokens = topk_index // vocab, topk_index % vocab
        cand_seqs = torch.cat([running[parent_beam], tokens[:, None]], dim=-1)
        cand_raw = torch.cat([running_raw[parent_beam], raw[parent_beam, tokens][:, None]], dim=-1)
        cur_len = running.shape[1]
        hits = torch.isin(tokens, stop) | (cur_len + 1 >= max_length)

        # running beams for the next step: best num_beams that did not end
        alive_scores = topk_scores + hits.to(torch.float32) * NEG
        next_index = torch.topk(alive_scores, k=num_beams).indices
        # finished pool: merge the just-ended top candidates, length-penalised
        just_done = hits & top_mask
        penalised = topk_scores / ((cur_len + 1 - prompt_len) ** length_penalty)
        penalised = penalised + float(not unsatisfied) * NEG
        penalised = penalised + (~just_done).to(torch.float32) * NEG
        merged = torch.cat([fin_scores, penalised])
        chosen = torch.topk(merged, k=num_beams).indices.tolist()
        merged_items = fin_items + [(cand_seqs[k], cand_raw[k], (step, k)) for k in range(keep)]
        merged_done = torch.cat([fin_done, just_done])
        fin_scores, fin_done = merged[chosen], merged_done[chosen]
        fin_items = [merged_items[i] for i in chosen]

        rec["parent"].append([running_origin[b] for b in parent_beam.tolist()])
        rec["token"].append(tokens.tolist())
        rec["score"].append(topk_scores.tolist())
        rec["finished"].append(hits.tolist())
        rec["running"].append(next_index.tolist())

        running = cand_seqs[next_index]
        running_raw = cand_raw[next_index]
        running_scores = alive_scores[next_index]
        running_origin = next_index.tolist()
        cache.reorder_cache(parent_beam[next_index])
        step += 1
        if on_step is not None:
            on_step(step, max_new_tokens)
        # generate()'s stopping rule with early_stopping=False
        best_possible = running_scores[:1] / ((cur_len + 1 - prompt_len) ** length_penalty)
        worst_finished = torch.where(fin_done, fin_scores.min(), torch.tensor(NEG, device=device))
        unsatisfied = unsatisfied and bool(torch.any(best_possible > worst_finished))
        if not unsatisfied or bool(hits.all()):
            break
        step_input = running[:, -1:]
    engine.synchronize()
    seconds = time.perf_counter() - start

    ids, raw_lp, (win_step, win_cand) = fin_items[0]
    records = BeamRecords(
        num_beams=num_beams, cand_parent=np.array(rec["parent"], np.int64), cand_token=np.array(rec["token"], np.int64),
        cand_score=np.array(rec["score"], np.float32), cand_finished=np.array(rec["finished"], bool),
        running=np.array(rec["running"], np.int64), winner=_trace(rec["parent"], win_step, win_cand),
        winner_score=float(fin_scores[0]), length_penalty=length_penalty)
    return BeamOutput(token_ids=ids[prompt_len:].tolist(), token_logprobs=raw_lp.cpu().numpy().astype(np.float32),
                      seconds=seconds, first_logits=first_logits, records=records)


def _trace(parents: list[list[int]], step: int, cand: int) -> np.ndarray:
    """Candidate index at each step 0..step along the path that ends at ``(step, cand)``."""
    path = [cand]
    for t in range(step, 0, -1):
        path.append(parents[t][path[-1]])
    return np.array(path[::-1], np.int64)


def run_beam(engine, prompt_ids, strategy, max_new_tokens, on_step=None):
    """The registry loop of beam search: ``(ids, logprobs, seconds, first_logits, {"beam": records})``."""
    out = beam_search(engine, prompt_ids, strategy, max_new_tokens, on_step=on_step)
    return out.token_ids, out.token_logprobs, out.seconds, out.first_logits, {"beam": out.records}
