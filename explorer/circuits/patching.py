"""Activation patching (exact) and attribution patching on a clean/corrupted pair of prompts.

Activation patching (Meng et al. 2022 "causal tracing"; Heimersheim & Nanda 2024, "How to use and interpret
activation patching"): run the corrupted prompt, replace one activation with its value from the clean run, and
measure the metric ``logit(answer) - logit(wrong_answer)`` at the last position. Normalised
``(m_patched - m_corrupted) / (m_clean - m_corrupted)``: 0 = as corrupted, 1 = as clean.

Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial Scale"; Syed et al.
2023) estimates every cell at once to first order: ``(a_clean - a_corrupted) · ∂m/∂a`` at the corrupted run,
from one forward and one backward pass (``torch.autograd.grad`` on the activations; the shared parameters never
get a ``.grad``), normalised the same way.

Cells are patched in batches of ``Limits.patch_batch`` corrupted copies per forward pass (one model turn each),
in row order, so the first grid rows arrive first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from explorer.circuits.prompts import answer_id, prompt_ids, token_text
from explorer.circuits.sites import check_site, grid_shape, head_dim, read_all, write_cells
from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.intervene import trace
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured


@dataclass(frozen=True)
class PatchResult:
    """A patching grid.

    Attributes:
        model, site: what was patched.
        grid: ``(rows, columns)`` float64, normalised metric (NaN for cells past the cap).
        attribution: ``(rows, columns)`` float64, attribution patching's estimate of ``grid``.
        correlation: Pearson correlation of ``grid`` and ``attribution`` over the computed cells (NaN if constant).
        rows, columns: labels (``embed``, ``L0`` ... / ``H0`` ... / ``0 'When'`` ...).
        clean_tokens, corrupted_tokens: readable tokens of both prompts.
        clean_metric, corrupted_metric: ``logit(answer) - logit(wrong_answer)`` of the unpatched runs (logits).
        answer, wrong_answer: the two tokens, quoted.
        cells_done: cells computed (all unless capped or stopped).
        notices: caps applied, stops.
        provenance: measured.
    """

    model: str
    site: str
    grid: np.ndarray
    attribution: np.ndarray
    correlation: float
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    clean_tokens: tuple[str, ...]
    corrupted_tokens: tuple[str, ...]
    clean_metric: float
    corrupted_metric: float
    answer: str
    wrong_answer: str
    cells_done: int
    notices: tuple[str, ...] = ()
    provenance: Provenance | None = field(default=None)

    def to_api(self, decimals: int = 5) -> dict:
        """The ``/patch`` JSON (see :func:`patch_to_api`)."""
        return patch_to_api(self, decimals)


@dataclass(frozen=True)
class PatchInputs:
    """Validated inputs: ids of both prompts and the two answer ids."""

    clean: list
    corrupted: list
    answer: int
    wrong: int


def check_inputs(engine: Engine, clean, corrupted, answer, wrong_answer, chat_template: bool = False) -> PatchInputs:
    """Encode and check a patching request.

    Raises:
        ValueError: an empty prompt; identical prompts; prompts of different token lengths (both counts given);
            answer or wrong_answer not one token; answer equal to wrong_answer (each message names the argument).
    """
    clean_ids = prompt_ids(engine, clean, "clean", chat_template)
    corrupted_ids = prompt_ids(engine, corrupted, "corrupted", chat_template)
    if len(clean_ids) != len(corrupted_ids):
        raise ValueError(f"corrupted must have as many tokens as clean: clean is {len(clean_ids)} tokens, corrupted "
                         f"{len(corrupted_ids)}. Change a word for one of the same token count.")
    if clean_ids == corrupted_ids:
        raise ValueError("corrupted is the same as clean: change at least one token.")
    good, bad = answer_id(engine, answer, "answer"), answer_id(engine, wrong_answer, "wrong_answer")
    if good == bad:
        raise ValueError(f"wrong_answer is the same token as answer ({token_text(engine, good)}): pick another.")
    return PatchInputs(clean_ids, corrupted_ids, good, bad)


def metric_of(logits, good: int, bad: int):
    """``logit(good) - logit(bad)`` at the last position, per batch row: ``(batch,)`` (``logits`` ``(b, n, vocab)``)."""
    return logits[:, -1, good].float() - logits[:, -1, bad].float()


def clean_activations(engine: Engine, ids, site: str) -> tuple[list, float]:
    """The clean run's activations of every row of ``site`` (each ``(1, n, width)``) and its metric inputs.

    Returns:
        ``(acts, logits_last)``: ``logits_last`` ``(vocab,)`` float32 at the last position.
    """
    rows = grid_shape(engine.config, site, len(ids))[0]

    def body(wrapped, store):
        read_all(wrapped, site, rows, store)

    store = trace(engine, ids, body, logits_to_keep=1)
    return [a.detach() for a in store["acts"]], store["output"].logits[0, -1].float()


def patched_logits(engine: Engine, ids, site: str, clean_acts: list, batch_cells: list[list[tuple[int, int]]]):
    """One forward pass of ``len(batch_cells)`` copies of ``ids`` with the given cells patched (one model turn).

    Returns:
        ``torch.Tensor`` ``(batch, vocab)``: last-position logits per batch row, float32.
    """
    import torch

    d_head = head_dim(engine.config)
    batch = torch.as_tensor(ids, dtype=torch.long).unsqueeze(0).repeat(len(batch_cells), 1)

    def body(wrapped, store):
        write_cells(wrapped, site, batch_cells, clean_acts, d_head)

    store = trace(engine, batch, body, logits_to_keep=1)
    return store["output"].logits[:, -1].float()


def attribution_grid(engine: Engine, ids, site: str, clean_acts: list, good: int, bad: int) -> tuple[np.ndarray, float]:
    """Attribution patching: ``(a_clean - a_corrupted) · ∂metric/∂a`` per cell, from one forward + one backward.

    Returns:
        ``(grid (rows, columns) un-normalised, in logits, corrupted metric)``.
    """
    import torch

    rows, columns = grid_shape(engine.config, site, len(ids))
    d_head = head_dim(engine.config)

    def body(wrapped, store):
        read_all(wrapped, site, rows, store, grad=True)

    def backward(store):
        store["metric"] = metric_of(store["output"].logits, good, bad)[0]
        store["grads"] = torch.autograd.grad(store["metric"], store["acts"])

    store = trace(engine, ids, body, grad=True, after=backward, logits_to_keep=1)
    metric = store["metric"]
    out = np.zeros((rows, columns))
    for row, (grad, corrupted, clean) in enumerate(zip(store["grads"], store["acts"], clean_acts)):
        delta = ((clean - corrupted.detach()) * grad)[0]  # (n, width)
        if site == "attn_head":
            out[row] = delta.reshape(delta.shape[0], columns, d_head).sum(dim=(0, 2)).cpu().numpy()
        else:
            out[row] = delta.sum(dim=-1).cpu().numpy()
    return out, float(metric.detach())


def _labels(engine: Engine, site: str, ids) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from explorer.attention.capture import token_label

    layers = int(engine.config.num_hidden_layers)
    positions = tuple(f"{p} {token_label(engine.tokenizer, t)}" for p, t in enumerate(ids))
    if site == "resid":
        return ("embed",) + tuple(f"L{l}" for l in range(layers)), positions
    if site == "attn_head":
        return tuple(f"L{l}" for l in range(layers)), tuple(f"H{h}" for h in range(engine.config.num_attention_heads))
    return tuple(f"L{l}" for l in range(layers)), positions


def iter_patch(clean: str, corrupted: str, answer, wrong_answer, site: str = "resid", model: str | None = None,
               chat_template: bool = False, engine: Engine | None = None,
               should_stop=None) -> Iterator[Progress | PatchResult]:
    """Patch every cell of ``site``'s grid; yields :class:`Progress` with the partial :class:`PatchResult` after
    each batch, then the final result.

    Args:
        clean, corrupted: prompts of the same token length.
        answer, wrong_answer: one token each (string, or id).
        site: ``resid``, ``attn_head`` or ``mlp``.
        model: model name; ignored when ``engine`` is given.
        chat_template: wrap both prompts in the chat template.
        should_stop: optional callable; when it returns True the grid stops after the current batch (noticed).
    Raises:
        ValueError: see :func:`check_inputs`; unknown site; an encoder; clean and corrupted metrics equal or not
            finite.
    """
    engine = engine or get_engine(model)
    check_site(site)
    inputs = check_inputs(engine, clean, corrupted, answer, wrong_answer, chat_template)
    limits = get_limits()
    notices: list[str] = []
    yield Progress(0.0, "clean run")
    clean_acts, clean_logits = clean_activations(engine, inputs.clean, site)
    clean_metric = float(clean_logits[inputs.answer] - clean_logits[inputs.wrong])
    yield Progress(0.02, "attribution patching (one forward, one backward)")
    attribution, corrupted_metric = attribution_grid(engine, inputs.corrupted, site, clean_acts, inputs.answer,
                                                     inputs.wrong)
    if not (math.isfinite(clean_metric) and math.isfinite(corrupted_metric)):
        raise ValueError(f"answer: the metric is not finite (clean {clean_metric}, corrupted {corrupted_metric}).")
    span = clean_metric - corrupted_metric
    if abs(span) < 1e-6:
        raise ValueError(f"corrupted: clean and corrupted give the same metric ({clean_metric:.4f}); patching "
                         "cannot be normalised. Pick a corruption that changes the answer.")
    rows, columns = grid_shape(engine.config, site, len(inputs.clean))
    cells = [(r, c) for r in range(rows) for c in range(columns)]
    if len(cells) > limits.max_patch_cells:
        cut_rows = limits.max_patch_cells // columns
        notices.append(f"The grid has {len(cells)} cells; only the first {cut_rows} rows "
                       f"({cut_rows * columns} cells) were patched (max_patch_cells = {limits.max_patch_cells}).")
        cells = cells[: cut_rows * columns]
    grid = np.full((rows, columns), np.nan)
    row_labels, column_labels = _labels(engine, site, inputs.clean)
    from explorer.attention.capture import token_label

    def result(done: int, extra: tuple[str, ...] = ()) -> PatchResult:
        computed = ~np.isnan(grid)
        normalised_attr = attribution / span
        corr = float("nan")
        if computed.sum() > 2 and np.std(grid[computed]) > 0 and np.std(normalised_attr[computed]) > 0:
            corr = float(np.corrcoef(grid[computed], normalised_attr[computed])[0, 1])
        return PatchResult(
            model=engine.name, site=site, grid=grid.copy(), attribution=normalised_attr, correlation=corr,
            rows=row_labels, columns=column_labels,
            clean_tokens=tuple(token_label(engine.tokenizer, t) for t in inputs.clean),
            corrupted_tokens=tuple(token_label(engine.tokenizer, t) for t in inputs.corrupted),
            clean_metric=clean_metric, corrupted_metric=corrupted_metric,
            answer=token_text(engine, inputs.answer), wrong_answer=token_text(engine, inputs.wrong), cells_done=done,
            notices=tuple(notices) + extra,
            provenance=measured(f"activation patching with nnsight on a shadow tree ({site}), batches of "
                                f"{limits.patch_batch}", model=engine.name))

    batch_size = max(1, int(limits.patch_batch))
    done = 0
    for start in range(0, len(cells), batch_size):
        if should_stop is not None and should_stop():
            yield result(done, (f"Stopped after {done} of {len(cells)} cells.",))
            return
        batch = cells[start:start + batch_size]
        logits = patched_logits(engine, inputs.corrupted, site, clean_acts, [[cell] for cell in batch])
        metrics = (logits[:, inputs.answer] - logits[:, inputs.wrong]).cpu().numpy()
        for (r, c), m in zip(batch, metrics):
            grid[r, c] = (float(m) - corrupted_metric) / span
        done += len(batch)
        yield Progress(0.05 + 0.95 * done / len(cells), f"patched {done} of {len(cells)} cells", partial=result(done))
    yield result(done)


def run_patch(*args, **kwargs) -> PatchResult:
    """:func:`iter_patch` drained: the finished :class:`PatchResult`."""
    return run_to_end(iter_patch(*args, **kwargs))


def _round(values: np.ndarray, decimals: int) -> list:
    return [[None if not np.isfinite(v) else round(float(v), decimals) for v in row] for row in values]


def patch_to_api(result: PatchResult, decimals: int = 5) -> dict:
    """The ``/patch`` JSON.

    Returns:
        ``{"grid": [[float | null]], "site", "rows", "columns", "clean_metric", "corrupted_metric", "notices",
        "attribution": [[float]], "correlation": float | null, "answer", "wrong_answer", "clean_tokens",
        "corrupted_tokens", "model", "provenance"}``.
    """
    corr = result.correlation if np.isfinite(result.correlation) else None
    return {"grid": _round(result.grid, decimals), "site": result.site, "rows": list(result.rows),
            "columns": list(result.columns), "clean_metric": round(result.clean_metric, decimals),
            "corrupted_metric": round(result.corrupted_metric, decimals), "notices": list(result.notices),
            "attribution": _round(result.attribution, decimals), "correlation": corr, "answer": result.answer,
            "wrong_answer": result.wrong_answer, "clean_tokens": list(result.clean_tokens),
            "corrupted_tokens": list(result.corrupted_tokens), "model": result.model,
            "provenance": result.provenance.to_api() if result.provenance else None}


def causal_cone(site: str, row: int, column: int, shape: tuple[int, int]) -> np.ndarray:
    """The cells a patch at ``(row, column)`` can affect: later rows at the same or later positions.

    For ``attn_head`` (columns are heads, all positions patched) every head of a later layer can be affected.

    Returns:
        ``np.ndarray`` ``shape`` of bool; the selected cell itself is included.
    """
    rows, columns = shape
    cone = np.zeros(shape, dtype=bool)
    if site == "attn_head":
        cone[row + 1:, :] = True
    else:
        cone[row + 1:, column:] = True
    cone[row, column] = True
    return cone
