"""Continuations for the prompting lens: greedy or sampled lines over ``Engine.steps``, and the tree-of-thoughts
search.

Every pass goes through :meth:`explorer.core.engine.Engine.steps` (one locked pass per token, so other users
interleave). Sampling draws from a private ``torch.Generator`` seeded per item and sample; the global RNG is never
touched. Tree of thoughts (Yao et al. 2023, "Tree of Thoughts: Deliberate Problem Solving with Large Language
Models") is reduced to what a 135M model can show: a breadth-2 beam over reasoning lines, each line started from
one of the two most likely first tokens and finished greedily, candidates ranked by their mean token
log-probability under the model (the model's own value estimate, no external judge).
"""
from __future__ import annotations

from dataclasses import dataclass, field

STOP_LINE = "line"        # stop at the first newline (direct answers)
STOP_BLOCK = "block"      # stop at a blank line or a new "Question:" (reasoning in plain text)
STOP_EOS = "eos"          # stop only at the end of the turn or the cap (reasoning in a chat turn)


@dataclass
class Continuation:
    """What one continuation produced.

    Attributes:
        ids: generated token ids. text: their decoded text (cut at the stop mark).
        logprobs: log-probability (nats) of each generated token under the model's distribution at that step.
        tokens: tokens processed, prompt plus generated (the cost the prompting table reports).
    """

    ids: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    tokens: int = 0


def _stopped(text: str, stop: str) -> str | None:
    """``text`` cut at its stop mark, or None while it has not reached one."""
    if stop == STOP_EOS:
        return None
    if stop == STOP_LINE:
        body = text.lstrip("\n ")
        cut = body.find("\n")
        return body[:cut] if cut >= 0 else None
    for mark in ("\n\n", "\nQuestion:"):
        cut = text.find(mark)
        if cut > 0:
            return text[:cut]
    return None


def continue_text(engine, ids: list[int], max_new_tokens: int, stop: str = STOP_LINE, generator=None,
                  temperature: float = 1.0, model=None, patches=()) -> Continuation:
    """Continue ``ids`` greedily (or by sampling when ``generator`` is given) until ``stop`` or the token cap.

    Args:
        ids: prompt token ids ``(n,)``.
        max_new_tokens: cap on generated tokens.
        stop: :data:`STOP_LINE`, :data:`STOP_BLOCK` or :data:`STOP_EOS`.
        generator: a private ``torch.Generator``; None means greedy.
        temperature: sampling temperature (> 0) when sampling.
        model: a module tree sharing the engine's lock (a LoRA shadow), default the shared model, whose decode
            steps may share forward passes with other requests' (``Engine.steps(share=True)``).
        patches: per-pass patches (e.g. ``explorer.lora.registry.adapter_patches(run)``), inside each pass only
            (a patched pass runs alone).
    """
    import torch

    out = Continuation(tokens=len(ids))

    def select(logits, index):
        if generator is None:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))

    # plain passes share forward passes with other requests' steps (explorer/core/step_batcher.py); a shadow
    # (LoRA) or a patched pass runs alone
    for step in engine.steps(ids, max_new_tokens, select=select, model=model, patches=patches,
                             share=model is None and not patches):
        out.ids.append(step.token)
        out.logprobs.append(float(torch.log_softmax(step.logits.float(), -1)[step.token]))
        out.tokens += 1
        if step.finished:
            out.ids.pop()
            out.logprobs.pop()
            break
        text = engine.tokenizer.decode(out.ids, skip_special_tokens=True)
        cut = _stopped(text, stop)
        if cut is not None:
            out.text = cut
            return out
    out.text = engine.tokenizer.decode(out.ids, skip_special_tokens=True)
    if stop == STOP_LINE:
        out.text = out.text.strip().split("\n")[0]
    return out


def private_generator(seed: int):
    """A CPU ``torch.Generator`` seeded with ``seed`` (never the global RNG)."""
    import torch

    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return generator


@dataclass
class Thought:
    """A node of the tree-of-thoughts search: the reasoning so far and its summed log-probability (nats)."""

    ids: list[int]
    logprob: float
    text: str = ""
    done: bool = False

    @property
    def score(self) -> float:
        """Mean log-probability per generated token (higher is what the model finds more likely)."""
        return self.logprob / max(len(self.ids), 1)


def tree_of_thoughts(engine, ids: list[int], breadth: int = 2, depth: int = 3, line_tokens: int = 24,
                     model=None) -> tuple[Thought, list[Thought], int]:
    """Breadth-``breadth`` beam search over ``depth`` reasoning lines after the prompt ``ids``.

    Each node is expanded from its ``breadth`` most likely first tokens, each finished greedily to the end of the
    line; all candidates are ranked by :attr:`Thought.score` and the best ``breadth`` kept. A line that states
    the answer ("answer", "=") or ends the text closes its node.

    Returns:
        ``(best node, every node explored, tokens processed)``.
    """
    import torch

    frontier, explored, spent = [Thought(ids=[], logprob=0.0)], [], 0
    newline_ids = set(engine.tokenizer.encode("\n", add_special_tokens=False))
    for _ in range(depth):
        candidates = []
        for node in frontier:
            if node.done:
                candidates.append(node)
                continue
            base = list(ids) + node.ids
            first = next(iter(engine.steps(base, 1, model=model)))
            spent += len(base)
            logp = torch.log_softmax(first.logits.float(), -1)
            top = torch.topk(logp, breadth)
            for lp, tok in zip(top.values.tolist(), top.indices.tolist()):
                rest = continue_text(engine, base + [tok], line_tokens, STOP_LINE, model=model) \
                    if tok not in newline_ids else Continuation()
                spent += rest.tokens
                line_ids = [tok] + rest.ids
                text = engine.tokenizer.decode(node.ids + line_ids, skip_special_tokens=True)
                line = engine.tokenizer.decode(line_ids, skip_special_tokens=True)
                child = Thought(ids=node.ids + line_ids + sorted(newline_ids)[:1], logprob=node.logprob + lp + sum(
                    rest.logprobs), text=text)
                child.done = ("answer" in line.lower() or "=" in line or tok in engine.eos_token_ids()
                              or not line.strip())
                candidates.append(child)
                explored.append(child)
        frontier = sorted(candidates, key=lambda t: t.score, reverse=True)[:breadth]
        if all(t.done for t in frontier):
            break
    return frontier[0], explored, spent
