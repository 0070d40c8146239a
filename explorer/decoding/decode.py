"""Decoding lens: how a strategy turns next-token distributions into text, recorded step by step.

``run(text, model, strategies, max_new_tokens)`` decodes the same prompt with up to six strategies
(greedy, beam search, sampling with temperature / top-k / top-p / min-p / typical-p, repetition
penalty, no-repeat n-grams) and returns, for each, the text, the raw log-probability of every chosen
token, the wall time, where the text starts looping, and the records of what every logits processor did
at every step. The loops are our own (so they can record), with a KV cache (``DynamicCache``), and apply
transformers' own ``LogitsProcessor`` objects in generate()'s order; tests check that they produce the
same ids as ``model.generate`` (greedy, beam, and seeded sampling).

Sources: transformers ``GenerationMixin._sample`` / ``_beam_search`` (v5); Holtzman et al. 2020 (the
"neural text degeneration" loops that :func:`loop_start` marks).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from explorer.core.config import get_limits
from explorer.decoding.results import DecodeResult, DecodeRun, StepRecords
from explorer.decoding.strategies import MAX_STRATEGIES, Strategy, build_processors, parse_strategy
from explorer.core.engine import Engine, get_engine

TOP_N = 20
ProgressFn = Callable[[int, int], None]


def new_cache(engine: Engine):
    """An empty ``DynamicCache`` for the engine's model."""
    from transformers import DynamicCache

    return DynamicCache(config=engine.config)


def forward_logits(engine: Engine, input_ids, cache, last_only: bool = True):
    """One forward pass under the model's lock, appending ``input_ids`` to ``cache``.

    Args:
        input_ids: torch int64 tensor (batch, new_tokens).
        cache: the ``DynamicCache`` holding earlier positions (updated in place).
        last_only: return only the last position's logits.
    Returns:
        fp32 logits, shape (batch, vocab) if ``last_only`` else (batch, new_tokens, vocab); fp32 so that
        softmax never produces NaN or -inf from low-precision logits.
    """
    import torch

    with engine.session():
        out = engine.model(input_ids=input_ids, past_key_values=cache, use_cache=True,
                           logits_to_keep=1 if last_only else 0)
        logits = out.logits[:, -1] if last_only else out.logits
        return logits.to(dtype=torch.float32, copy=True)


def loop_start(ids, min_repeat: int = 4) -> int | None:
    """Index of the first token of a repetition loop that runs to the end of ``ids``, or None.

    The tail of ``ids`` is periodic with period ``p`` from index ``s`` when ``ids[k] == ids[k - p]`` for all
    ``k >= s``. A loop needs at least one full repeat of the period and ``min_repeat`` repeated tokens;
    among all periods the earliest start wins. Shape: ``ids`` (n,) ints. Returns the index ``s`` (where
    the repeated copy begins) or None.
    """
    ids = list(ids)
    n = len(ids)
    best = None
    for period in range(1, n // 2 + 1):
        run = 0
        while run < n - period and ids[n - 1 - run] == ids[n - 1 - run - period]:
            run += 1
        if run >= max(period, min_repeat):
            start = n - run
            best = start if best is None else min(best, start)
    return best


class _Recorder:
    """Collects :class:`StepRecords` rows while the loop runs (small arrays only, never full distributions)."""

    def __init__(self, stage_names: tuple[str, ...], top_n: int):
        self.stage_names, self.top_n = stage_names, top_n
        self.rows: dict[str, list] = {k: [] for k in ("top_ids", "raw_probs", "stage_probs", "stage_kept",
                                                       "chosen_raw", "chosen_final", "entropy")}

    def add(self, raw_logprobs, stage_scores: list, final_probs, token: int) -> None:
        """Record one step: raw log-probs (vocab,), each stage's scores (vocab,), the final probs (vocab,)."""
        import torch

        raw_probs = raw_logprobs.exp()
        top = torch.topk(raw_logprobs, self.top_n).indices
        self.rows["top_ids"].append(top.cpu().numpy())
        self.rows["raw_probs"].append(raw_probs[top].cpu().numpy())
        probs = [torch.softmax(s, dim=-1) for s in stage_scores]
        self.rows["stage_probs"].append(np.stack([p[top].cpu().numpy() for p in probs])
                                        if probs else np.zeros((0, self.top_n), np.float32))
        self.rows["stage_kept"].append(np.array([int(torch.isfinite(s).sum()) for s in stage_scores], np.int64))
        self.rows["chosen_raw"].append(float(raw_probs[token]))
        self.rows["chosen_final"].append(float(final_probs[token]))
        self.rows["entropy"].append(float(torch.special.entr(raw_probs).sum()))

    def result(self, chosen: list[int], vocab_size: int) -> StepRecords:
        """The rows collected so far as a frozen :class:`StepRecords` (``chosen`` = the picked ids)."""
        r = self.rows
        steps, n_stages = len(chosen), len(self.stage_names)
        return StepRecords(
            top_ids=np.array(r["top_ids"], np.int64).reshape(steps, self.top_n),
            raw_probs=np.array(r["raw_probs"], np.float32).reshape(steps, self.top_n),
            stage_names=self.stage_names,
            stage_probs=np.array(r["stage_probs"], np.float32).reshape(steps, n_stages, self.top_n),
            stage_kept=np.array(r["stage_kept"], np.int64).reshape(steps, n_stages),
            chosen_ids=np.array(chosen, np.int64), chosen_raw_probs=np.array(r["chosen_raw"], np.float32),
            chosen_final_probs=np.array(r["chosen_final"], np.float32),
            entropy_nats=np.array(r["entropy"], np.float32), vocab_size=vocab_size)


def token_loop(engine: Engine, prompt_ids: list[int], strategy: Strategy, max_new_tokens: int,
               record: bool = True, top_n: int = TOP_N, on_step: ProgressFn | None = None):
    """Greedy or sampled decoding of one sequence, one forward pass (and one lock) per token.

    Mirrors ``GenerationMixin._sample``: fp32 last-position logits -> transformers' logits processors in
    generate()'s order -> argmax (greedy) or ``torch.multinomial`` on the softmax (sampling, with a
    ``torch.Generator`` seeded with ``strategy.seed``, so a seed reproduces the text and matches
    ``torch.manual_seed(seed); model.generate(do_sample=True, ...)`` on the same device).

    Returns:
        ``(token_ids list[int], token_logprobs np.ndarray (n,) float32, StepRecords | None, first_logits
        np.ndarray (vocab,) float32, seconds float)``. Generation stops after an end-of-sequence token
        (included) or ``max_new_tokens``.
    """
    import torch

    processors = build_processors(strategy)
    device = engine.device
    generator = None
    if strategy.do_sample:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(strategy.seed))
    stop = engine.eos_token_ids()
    recorder = _Recorder(tuple(label for label, _ in processors), top_n) if record else None
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    cache, step_input = new_cache(engine), ids
    chosen, logprobs, first_logits = [], [], None
    start = time.perf_counter()
    for step in range(max_new_tokens):
        logits = forward_logits(engine, step_input, cache)
        if first_logits is None:
            first_logits = logits[0].cpu().numpy()
        raw_logprobs = torch.log_softmax(logits[0], dim=-1)
        scores, stage_scores = logits, []
        for _, processor in processors:
            scores = processor(ids, scores)
            if record:  # processors return new tensors, so keeping a reference is safe
                stage_scores.append(scores[0])
        if strategy.do_sample:
            probs = torch.softmax(scores, dim=-1)
            token = int(torch.multinomial(probs, num_samples=1, generator=generator)[0, 0])
        else:
            probs = torch.softmax(scores, dim=-1) if record else None
            token = int(torch.argmax(scores, dim=-1)[0])
        if recorder is not None:
            recorder.add(raw_logprobs, stage_scores, probs[0], token)
        chosen.append(token)
        logprobs.append(float(raw_logprobs[token]))
        step_input = torch.tensor([[token]], dtype=torch.long, device=device)
        ids = torch.cat([ids, step_input], dim=-1)
        if on_step is not None:
            on_step(step + 1, max_new_tokens)
        if token in stop:
            break
    seconds = time.perf_counter() - start
    records = recorder.result(chosen, int(first_logits.shape[-1])) if recorder is not None else None
    return chosen, np.array(logprobs, np.float32), records, first_logits, seconds


def temperature_distribution(logits, temperature: float) -> tuple[np.ndarray, float]:
    """Softmax of ``logits / temperature`` and its entropy, in float64 (no NaN, no -inf).

    ``temperature = 0`` is the greedy limit (all mass on the argmax); 1 leaves the distribution unchanged;
    larger values flatten it. Shapes: ``logits`` (vocab,); returns ``(probs (vocab,), entropy_nats)``.
    Raises ``ValueError`` for a negative temperature.
    """
    logits = np.asarray(logits, np.float64)
    if temperature < 0:
        raise ValueError(f"temperature={temperature:g} cannot be negative.")
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[int(np.argmax(logits))] = 1.0
        return probs, 0.0
    scaled = (logits - logits.max()) / temperature
    probs = np.exp(scaled)
    probs /= probs.sum()
    nonzero = probs[probs > 0]
    return probs, float(-(nonzero * np.log(nonzero)).sum())


def stage_distributions(strategy: Strategy, logits, input_ids=None) -> list[tuple[str, np.ndarray]]:
    """Apply the strategy's processors to fixed ``logits`` and return each stage's distribution.

    Args:
        logits: (vocab,) raw logits (numpy or torch).
        input_ids: (n,) ids seen so far (for repetition penalty / no-repeat n-gram); default none.
    Returns:
        ``[(stage label, probs (vocab,) float32)]`` starting with ``("raw", softmax(logits))``; a token is
        kept by a stage when its probability is > 0.
    """
    import torch

    scores = torch.as_tensor(np.asarray(logits, np.float32))[None, :]
    ids = torch.tensor([list(input_ids) if input_ids is not None else []], dtype=torch.long)
    out = [("raw", torch.softmax(scores[0], dim=-1).numpy())]
    for label, processor in build_processors(strategy):
        scores = processor(ids, scores)
        out.append((label, torch.softmax(scores[0], dim=-1).numpy()))
    return out


def _run_token(engine, prompt_ids, strategy, max_new_tokens, on_step):
    ids, logprobs, records, first_logits, seconds = token_loop(engine, prompt_ids, strategy, max_new_tokens,
                                                               on_step=on_step)
    return ids, logprobs, seconds, first_logits, {"steps": records}


def _run_beam(engine, prompt_ids, strategy, max_new_tokens, on_step):
    from explorer.decoding.beam import beam_search

    out = beam_search(engine, prompt_ids, strategy, max_new_tokens, on_step=on_step)
    return out.token_ids, out.token_logprobs, out.seconds, out.first_logits, {"beam": out.records}


# Decoding loops by StrategySpec.loop.
LOOPS = {"token": _run_token, "beam": _run_beam}


def token_text(engine: Engine, token_id: int) -> str:
    """The readable text of one token (special tokens shown by name)."""
    return engine.tokenizer.decode([int(token_id)])


def decode_one(engine: Engine, prompt_ids: list[int], strategy: Strategy, max_new_tokens: int,
               on_step: ProgressFn | None = None) -> tuple[DecodeRun, np.ndarray]:
    """Run one validated strategy; returns ``(DecodeRun, first_logits (vocab,) float32)``."""
    loop = LOOPS[strategy.spec.loop]
    ids, logprobs, seconds, first_logits, records = loop(engine, prompt_ids, strategy, max_new_tokens, on_step)
    run = DecodeRun(strategy=strategy.name, label=strategy.label, params=dict(strategy.params), seed=strategy.seed,
                    text=engine.tokenizer.decode(ids, skip_special_tokens=True),
                    token_ids=np.array(ids, np.int64), token_texts=tuple(token_text(engine, i) for i in ids),
                    token_logprobs=logprobs, seconds=seconds, loop_start=loop_start(ids), **records)
    return run, first_logits


def prepare(text: str, model: str | None, strategies, max_new_tokens, engine: Engine | None = None):
    """Validate a request: returns ``(engine, prompt_ids, [Strategy], max_new_tokens, notices)``.

    Raises:
        ValueError: empty prompt, non-causal model, no strategies, bad strategy parameters,
            ``max_new_tokens`` < 1, or a prompt longer than the configured cap.
    """
    limits = get_limits()
    notices: list[str] = []
    if not (text or "").strip():
        raise ValueError("Type a prompt first: decoding continues the text in the prompt box.")
    engine = engine or get_engine(model)
    if not engine.is_causal:
        raise ValueError(f"{engine.name} is an encoder (it does not predict next tokens); pick a causal model "
                         "such as smollm2-135m-instruct for decoding.")
    try:
        max_new_tokens = int(max_new_tokens)
    except (TypeError, ValueError):
        raise ValueError(f"max_new_tokens must be a whole number, got {max_new_tokens!r}.") from None
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be at least 1.")
    if max_new_tokens > limits.max_new_tokens:
        notices.append(f"max_new_tokens={max_new_tokens} is above this server's cap; capped to {limits.max_new_tokens}.")
        max_new_tokens = limits.max_new_tokens
    strategies = list(strategies) if strategies else []
    if not strategies:
        raise ValueError("Give at least one strategy, e.g. [{'name': 'greedy'}].")
    if len(strategies) > MAX_STRATEGIES:
        notices.append(f"{len(strategies)} strategies given; only the first {MAX_STRATEGIES} are run.")
        strategies = strategies[:MAX_STRATEGIES]
    vocab_size = int(engine.config.vocab_size)
    parsed = [s if isinstance(s, Strategy) else parse_strategy(s, vocab_size, limits.max_beams, notices)
              for s in strategies]
    prompt_ids = engine.chat_ids(text)
    engine.check_length(len(prompt_ids) + max_new_tokens)
    return engine, prompt_ids, parsed, max_new_tokens, notices


def iter_runs(text: str, model: str | None = None, strategies=None, max_new_tokens: int = 32,
              engine: Engine | None = None, on_step: ProgressFn | None = None):
    """Like :func:`run` but yields the partial :class:`DecodeResult` after each strategy finishes."""
    engine, prompt_ids, parsed, max_new_tokens, notices = prepare(text, model, strategies, max_new_tokens, engine)
    runs, first_logits = [], None
    for strategy in parsed:
        run_, logits = decode_one(engine, prompt_ids, strategy, max_new_tokens, on_step)
        runs.append(run_)
        first_logits = logits if first_logits is None else first_logits
        yield _result(engine, prompt_ids, runs, first_logits, notices)


def run(text: str, model: str | None = None, strategies=None, max_new_tokens: int = 32,
        engine: Engine | None = None, on_step: ProgressFn | None = None) -> DecodeResult:
    """Decode ``text`` (wrapped by the chat template) with each strategy, in order.

    Args:
        text: the user prompt.
        model: model name (default: the embedded SmolLM2); ignored when ``engine`` is given.
        strategies: list of strategy dicts (see :func:`explorer.decoding_strategies.parse_strategy`)
            or :class:`Strategy` objects; default ``[{"name": "greedy"}]``.
        max_new_tokens: tokens to add per strategy (capped at the configured ``max_new_tokens``).
        on_step: called as ``on_step(step, max_new_tokens)`` after every generated token.
    Returns:
        :class:`DecodeResult`.
    Raises:
        ValueError: see :func:`prepare`.
    """
    result = None
    for result in iter_runs(text, model, strategies or [{"name": "greedy"}], max_new_tokens, engine, on_step):
        pass
    return result


def _result(engine, prompt_ids, runs, first_logits, notices) -> DecodeResult:
    shown = set(int(i) for i in np.argsort(first_logits)[-50:])
    for r in runs:
        shown.update(int(i) for i in r.token_ids)
        if r.steps is not None:
            shown.update(int(i) for i in r.steps.top_ids.ravel())
        if r.beam is not None:
            shown.update(int(i) for i in r.beam.cand_token.ravel())
    vocab_text = {i: token_text(engine, i) for i in sorted(shown)}
    return DecodeResult(model=engine.name, prompt_ids=np.array(prompt_ids, np.int64), runs=tuple(runs),
                        first_logits=first_logits, vocab_text=vocab_text, notices=tuple(notices))


def to_api(result: DecodeResult) -> dict:
    """The JSON answer of ``/decode``: ``{"runs": [{"strategy", "params", "seed", "text", "token_ids",
    "token_logprobs", "seconds"}], "notices": [...]}`` with plain Python types."""
    runs = [{"strategy": r.strategy, "params": dict(r.params), "seed": r.seed, "text": r.text,
             "token_ids": [int(i) for i in r.token_ids], "token_logprobs": [float(x) for x in r.token_logprobs],
             "seconds": float(r.seconds)} for r in result.runs]
    return {"runs": runs, "notices": list(result.notices)}
