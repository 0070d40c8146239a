"""Hallucination probes: signals that correlate with a model stating something wrong, on one question.

A registry of probes (name -> :class:`Probe`); each entry carries its explanation, its computation, its
one-line summary, the figure kind the UI draws for it and the scores (oriented so that higher means "more
likely wrong") that the AUROC table in ``explorer.hallucination.evaluation`` evaluates. ``run(question, ...)``
answers the question greedily once and runs the chosen probes on that answer; ``iter_run`` yields a
``Progress`` after every probe so the UI can show progress and stop, then the result.

Papers: Manakul et al. 2023 (SelfCheckGPT), Malinin & Gales 2021 (sequence uncertainty), Kuhn et al. 2023
and Farquhar et al. 2024 (semantic entropy), Kadavath et al. 2022 (P(True)), nostalgebraist 2020 (logit
lens), Shi et al. 2023 (context reliance), Sundararajan et al. 2017 / captum (attribution).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from explorer.core.config import get_limits
from explorer.core.engine import get_engine
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.hallucination.answer import Answer, check_question, generate_answer, sequence_scores, token_scores
from explorer.hallucination.samples import max_entropy, run_samples
from explorer.hallucination.signals import context_reliance, logit_lens, p_true


@dataclass
class ProbeInput:
    """What a probe receives: the engine, the question, the greedy answer and the options.

    ``max_seconds`` is the time this probe may take (seconds); ``objects`` collects rich results
    (clusters, logit-lens grid, grounded answer, attribution) for the figures.
    """

    engine: object
    question: str
    answer: Answer
    context: str | None = None
    n_samples: int = 5
    seed: int = 0
    max_seconds: float = 60.0
    objects: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """One hallucination probe, self-described: adding a probe is one entry in :data:`PROBES`.

    Attributes:
        label: name shown in the UI.
        explanation: one line saying what it measures.
        fn: ``ProbeInput -> dict`` of JSON-friendly values; includes ``score`` (higher = more likely wrong).
        score_name: what ``score`` is.
        summary: ``summary(out) -> str``, the one-line Markdown result the UI shows for ``fn``'s dict.
        figure: the figure kind the UI draws for it (``components/tabs/hallucination/figures.py`` maps each
            kind to a plotly figure; the explorer itself stays plotly-free).
        auroc_scores: ``((table label, key in fn's dict), ...)``: the scores the stored AUROC table evaluates,
            each oriented "higher = more likely wrong" (empty = not in the table).
    """

    label: str
    explanation: str
    fn: Callable[[ProbeInput], dict]
    score_name: str
    summary: Callable[[dict], str]
    figure: str
    auroc_scores: tuple[tuple[str, str], ...] = ()


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _nan_to_none(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _token_confidence(inp: ProbeInput) -> dict:
    out = token_scores(inp.answer)
    out["score"] = _nan_to_none(out["max_surprisal"])
    out["max_surprisal"], out["min_prob"] = _nan_to_none(out["max_surprisal"]), _nan_to_none(out["min_prob"])
    return out


def _sequence(inp: ProbeInput) -> dict:
    out = {k: _nan_to_none(v) for k, v in sequence_scores(inp.answer).items()}
    out["score"] = out["perplexity"]
    return out


def _samples(inp: ProbeInput) -> dict:
    clusters = run_samples(inp.engine, inp.question, inp.answer.text, inp.n_samples, inp.seed, inp.context,
                           max_seconds=inp.max_seconds)
    inp.objects["samples"] = clusters
    groups = [{"representative": rep, "probability": float(p),
               "members": [s for s, c in zip(clusters.samples, clusters.cluster_of) if c == i]}
              for i, (rep, p) in enumerate(zip(clusters.representatives, clusters.cluster_probs))]
    return {"samples": clusters.samples, "clusters": groups, "semantic_entropy": clusters.semantic_entropy,
            "max_entropy": max_entropy(len(clusters.samples)), "n_samples": len(clusters.samples),
            "greedy_agreement": _nan_to_none(clusters.greedy_agreement),
            "disagreement": _nan_to_none(1.0 - clusters.greedy_agreement), "seed": clusters.seed,
            "temperature": clusters.temperature, "top_p": clusters.top_p,
            "stopped_by_time": clusters.stopped_by_time, "score": clusters.semantic_entropy}


def _logit_lens(inp: ProbeInput) -> dict:
    lens = logit_lens(inp.engine, inp.answer)
    inp.objects["logit_lens"] = lens
    return {"targets": lens.targets, "first_layer": lens.first_layer.tolist(), "num_layers": lens.num_layers,
            "top_tokens": lens.top_pieces, "mean_first_layer_fraction": lens.mean_first_layer_fraction(),
            "score": lens.mean_first_layer_fraction()}


def _p_true(inp: ProbeInput) -> dict:
    out = p_true(inp.engine, inp.question, inp.answer.text)
    out["score"] = 1.0 - out["p_true"]
    return out


def _grounded(inp: ProbeInput) -> dict:
    if not inp.context:
        raise ValueError("The grounded probe needs a context passage: paste one in the Context box.")
    grounded = generate_answer(inp.engine, inp.question, inp.context, max_seconds=inp.max_seconds)
    inp.objects["grounded"] = grounded
    reliance = context_reliance(inp.engine, grounded, inp.question)
    inp.objects["reliance"] = reliance
    from explorer.hallucination.answer import normalise

    return {"answer_with_context": grounded.text, "answer_without_context": inp.answer.text,
            "changed": normalise(grounded.text) != normalise(inp.answer.text),
            "sequence_with_context": {k: _nan_to_none(v) for k, v in sequence_scores(grounded).items()},
            "sequence_without_context": {k: _nan_to_none(v) for k, v in sequence_scores(inp.answer).items()},
            **reliance, "score": -reliance["pmi_per_token"]}


def _attribution(inp: ProbeInput) -> dict:
    from explorer.hallucination.attribution import attribute

    result = attribute(inp.engine, inp.question, inp.answer, method="feature_ablation", unit="word",
                       max_seconds=inp.max_seconds)
    inp.objects["attribution"] = result
    return {**result.to_api(), "score": None}


PROBES: dict[str, Probe] = {
    "token_confidence": Probe(
        "Token confidence", "How likely the model found each answer token: probability, entropy and rank among "
        "its predictions; one unlikely token is a warning sign.", _token_confidence,
        "max token surprisal -log p (nats)",
        lambda o: f"weakest token p = {_fmt(o['min_prob'])}, max surprisal {_fmt(o['max_surprisal'])} nats",
        "token_confidence", (("token confidence: max surprisal", "max_surprisal"),)),
    "sequence": Probe(
        "Sequence uncertainty", "Probability of the whole greedy answer, its perplexity and the mean entropy of the "
        "next-token distributions.", _sequence, "perplexity",
        lambda o: f"sequence p = {_fmt(o['sequence_prob'], 4)}, perplexity {_fmt(o['perplexity'])}, "
                  f"mean entropy {_fmt(o['mean_entropy'])} nats",
        "sequence", (("sequence: perplexity", "perplexity"), ("sequence: mean entropy", "mean_entropy"))),
    "semantic_entropy": Probe(
        "Agreement across samples", "Sample several answers, group them by meaning; many different meanings (high "
        "semantic entropy) suggest the model is guessing.", _samples, "semantic entropy (nats)",
        lambda o: f"{len(o['clusters'])} meaning cluster(s) in {o['n_samples']} samples, semantic entropy "
                  f"{_fmt(o['semantic_entropy'])} of max {_fmt(o['max_entropy'])} nats, "
                  f"greedy agreement {_fmt(o['greedy_agreement'], 2)}",
        "sample_clusters", (("samples: semantic entropy", "semantic_entropy"),
                            ("samples: 1 - greedy agreement", "disagreement"))),
    "logit_lens": Probe(
        "Logit lens", "Read every layer's hidden state through the output layer; answers the model knows tend to "
        "appear in earlier layers.", _logit_lens, "mean first layer / num layers",
        lambda o: f"first layers {o['first_layer']} of {o['num_layers']}",
        "logit_lens", (("logit lens: mean first layer", "mean_first_layer_fraction"),)),
    "p_true": Probe(
        "Self-evaluation P(True)", "Ask the model whether its own answer is true; a low P(True) means it doubts "
        "itself.", _p_true, "1 - P(True)",
        lambda o: f"P(True) = {_fmt(o['p_true'])} (mass on True/False {_fmt(o['mass'])})",
        "p_true", (("P(True): 1 - P(True)", "score"),)),
    "grounded": Probe(
        "Grounded vs ungrounded", "Answer with and without a passage you paste; the change in log-probability "
        "shows how much the answer relies on the passage.", _grounded, "minus context PMI (nats/token)",
        lambda o: f"with context: {o['answer_with_context']!r}; without: {o['answer_without_context']!r}; "
                  f"reliance {_fmt(o['pmi_per_token'])} nats/token",
        "grounded"),
    "attribution": Probe(
        "Attribution", "Which words of the question drove the answer (captum feature ablation: drop a word, see "
        "how much the answer's log-probability falls).", _attribution, "none",
        lambda o: "strongest words: " + ", ".join(
            f"{s.strip()!r} {v:+.2f}" for s, v in sorted(zip(o['segments'], o['scores']), key=lambda t: -t[1])[:3]),
        "attribution"),
}
DEFAULT_PROBES = ("token_confidence", "sequence", "semantic_entropy", "logit_lens", "p_true")


@dataclass(frozen=True)
class HallucinationResult:
    """All probes on one question.

    Attributes:
        question, context: what was asked.
        answer: the greedy :class:`Answer`.
        probes: name -> JSON-friendly dict (each with ``score``; ``{"error": ...}`` or ``{"skipped": ...}`` if it
            could not run).
        objects: rich results for figures (``samples``, ``logit_lens``, ``grounded``, ``attribution``).
        elapsed_ms: name -> wall time of each probe, ms (``"answer"`` for the greedy answer).
        notices: messages about capped inputs (samples, context length), an answer cut short by the time cap
            and probes skipped by the run's time cap.
        provenance: measured on the model named in it.
    """

    question: str
    context: str | None
    answer: Answer
    probes: dict
    objects: dict
    elapsed_ms: dict
    notices: tuple = ()
    provenance: Provenance = field(default_factory=lambda: measured("hallucination probes"))

    def to_api(self) -> dict:
        """The JSON shape of ``/probe``: ``{"question", "answer", "answer_cut_short", "probes": {name: {...}},
        "elapsed_ms", "notices", "provenance"}`` (``answer_cut_short``: the time cap stopped the answer before
        it ended)."""
        return {"question": self.question, "answer": self.answer.text,
                "answer_cut_short": bool(self.answer.stopped_by_time), "probes": self.probes,
                "elapsed_ms": {k: round(v, 1) for k, v in self.elapsed_ms.items()}, "notices": list(self.notices),
                "provenance": self.provenance.to_api()}


def summary_lines(result: HallucinationResult) -> list[str]:
    """One Markdown line per probe run: its :attr:`Probe.summary`, or its error / skip message."""
    lines = []
    for name, out in result.probes.items():
        label = PROBES[name].label
        if "error" in out or "skipped" in out:
            lines.append(f"- **{label}**: {out.get('error') or out.get('skipped')}")
            continue
        note = f" ({out['note']})" if out.get("note") else ""
        lines.append(f"- **{label}**: {PROBES[name].summary(out)}{note}")
    return lines


def check_probes(probes) -> list[str]:
    """Validate probe names (empty -> the defaults).

    Raises:
        ValueError: an unknown probe name; the message lists the known ones.
    """
    names = list(probes or DEFAULT_PROBES)
    unknown = [p for p in names if p not in PROBES]
    if unknown:
        raise ValueError(f"Unknown probe(s) {', '.join(map(repr, unknown))}; choose from {', '.join(PROBES)}.")
    return names


CONTEXT_RESERVE_TOKENS = 160  # room for the worked examples, the question and the answer


def cap_inputs(engine, n_samples: int, context: str | None) -> tuple[int, str | None, list[str]]:
    """Cap the number of samples (``Limits.max_samples``) and the context length (``Limits.max_prompt_tokens``
    minus room for the rest of the prompt); return ``(n_samples, context, notices)``."""
    limits = get_limits()
    notices = []
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    if n_samples > limits.max_samples:
        notices.append(f"{n_samples} samples asked; capped at {limits.max_samples}.")
        n_samples = limits.max_samples
    context = (context or "").strip() or None
    if context:
        cap = max(16, min(limits.max_prompt_tokens, engine.context_length()) - CONTEXT_RESERVE_TOKENS)
        ids = engine.tokenizer(context, add_special_tokens=False)["input_ids"]
        if len(ids) > cap:
            notices.append(f"The context is {len(ids):,} tokens; only its first {cap:,} tokens are used.")
            context = engine.tokenizer.decode(ids[:cap])
    return n_samples, context, notices


def iter_run(question: str, model: str | None = None, probes=None, context: str | None = None,
             n_samples: int = 5, seed: int = 0, engine=None) -> Iterator[Progress | HallucinationResult]:
    """Answer once, then run each probe: a :class:`Progress` after the answer and after each probe (its
    ``partial`` is the :class:`HallucinationResult` so far), then the final result.

    ``n_samples`` above ``Limits.max_samples`` and a too-long context are capped (see :func:`cap_inputs`)
    and the result's ``notices`` say so. A probe that raises
    ``ValueError`` records ``{"error": message}``; once ``Limits.max_run_seconds`` is spent the remaining
    probes record ``{"skipped": ...}``. Every probe steps the model through the engine, one locked forward
    pass at a time, so other users interleave.

    Raises:
        ValueError: empty question, unknown probe or model, prompt too long.
    """
    question = check_question(question)
    names = check_probes(probes)
    limits = get_limits()
    engine = engine or get_engine(model)
    if not engine.is_causal:
        raise ValueError(f"{engine.name} is an encoder: it cannot generate an answer to probe. "
                         "Choose a chat model such as smollm2-135m-instruct.")
    n_samples, context, notices = cap_inputs(engine, n_samples, context)
    provenance = measured("greedy answer + probes " + ", ".join(names), model=engine.name)
    started = time.perf_counter()
    answer = generate_answer(engine, question, max_seconds=limits.max_probe_seconds)
    timings = {"answer": (time.perf_counter() - started) * 1000}
    if answer.stopped_by_time:
        notices.append(f"The answer was cut short by the {limits.max_probe_seconds:.0f} s time cap; the probes "
                       "score the part that was generated.")
    inp = ProbeInput(engine, question, answer, context, n_samples, seed, limits.max_probe_seconds)
    results: dict = {}

    def snapshot() -> HallucinationResult:
        return HallucinationResult(question, context, answer, dict(results), dict(inp.objects), dict(timings),
                                   tuple(notices), provenance)

    def progress(done: int) -> Progress:
        upcoming = PROBES[names[done]].label if done < len(names) else None
        return Progress((done + 1) / (len(names) + 1), f"running {upcoming}" if upcoming else "done",
                        partial=snapshot())

    yield progress(0)
    skipped: list[str] = []
    for i, name in enumerate(names):
        if time.perf_counter() - started > limits.max_run_seconds:
            results[name] = {"skipped": f"the run passed its time cap of {limits.max_run_seconds:.0f} s"}
            skipped.append(name)
            notices[:] = [n for n in notices if not n.startswith("Skipped by the time cap")]
            notices.append(f"Skipped by the time cap ({limits.max_run_seconds:.0f} s): {', '.join(skipped)}.")
            yield progress(i + 1)  # every probe ends in a yielded snapshot, skipped ones included
            continue
        t0 = time.perf_counter()
        try:
            results[name] = PROBES[name].fn(inp)
        except ValueError as exc:
            results[name] = {"error": str(exc)}
        timings[name] = (time.perf_counter() - t0) * 1000
        if timings[name] > limits.max_probe_seconds * 1000:
            results[name]["note"] = f"took {timings[name] / 1000:.0f} s, above the {limits.max_probe_seconds:.0f} s cap"
        yield progress(i + 1)
    yield snapshot()


def run(question: str, model: str | None = None, probes=None, context: str | None = None, n_samples: int = 5,
        seed: int = 0, engine=None) -> HallucinationResult:
    """Answer ``question`` greedily and run the chosen probes (default :data:`DEFAULT_PROBES`).

    Returns:
        :class:`HallucinationResult`.
    Raises:
        ValueError: see :func:`iter_run`.
    """
    return run_to_end(iter_run(question, model, probes, context, n_samples, seed, engine))


def compare_entities(template: str, real: str, fictitious: str, model: str | None = None, probes=None,
                     n_samples: int = 5, seed: int = 0, engine=None) -> tuple[HallucinationResult, HallucinationResult]:
    """The same question about a real and an invented entity, probes side by side.

    Args:
        template: question containing ``{entity}`` (replaced literally, so other braces are kept).
    Raises:
        ValueError: a missing ``{entity}`` placeholder or empty names, plus :func:`run`'s errors.
    """
    if "{entity}" not in (template or ""):
        raise ValueError("Write the question with {entity} where the name goes, e.g. 'Who was {entity}?'.")
    if not (real or "").strip() or not (fictitious or "").strip():
        raise ValueError("Give both a real and an invented name.")
    return tuple(run(template.replace("{entity}", name.strip()), model, probes, None, n_samples, seed, engine)
                 for name in (real, fictitious))
