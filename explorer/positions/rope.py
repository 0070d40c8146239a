"""RoPE measured on the real model: rotate a real query and key to positions i and j, shift both, compare scores.

With RoPE the score between a query at position ``i`` and a key at ``j`` is
``q^T R(i)^T R(j) k = q^T R(j - i) k`` (Su et al. 2021, arXiv:2104.09864, eq. 16): it depends on ``j - i`` only,
so shifting both positions by the same offset leaves it unchanged up to float error. That float error grows with
position because the angle ``position x inv_freq`` is formed in float32 (spacing ``2**-23 x position`` rad).

:func:`run` takes every layer's pre-rotation query and key vectors from one locked forward pass over the passage
(forward hooks on ``q_proj``/``k_proj``, or on ``q_norm``/``k_norm`` where the model normalises them first, as
Gemma 3 does; the hooks are removed in ``finally``), rotates them with the model's own ``apply_rotary_pos_emb``
and rotary module, and measures the largest relative change of the score over all layers and heads. The same check
with a sinusoidal absolute position vector added to q and k instead (Vaswani et al. 2017, section 3.5) fails.
"""
from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass, field

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.patches import ForwardHook
from explorer.core.progress import Progress
from explorer.core.provenance import Provenance, formula, measured
from explorer.core.validation import check_int, check_text
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.positions.model_rope import (RopeBase, apply_rotary_fn, check_position, cos_sin, decoder_core,
                                          require_rope, rope_bases)

DEFAULT_TEXT = "The lighthouse keeper climbed the stairs every evening to light the lamp before the ships came in."


@dataclass(frozen=True)
class ShiftCheck:
    """Scores of one query/key pair before and after shifting both positions.

    Attributes:
        scores: ``(num_layers, num_heads)`` float64, ``q(i) . k(j) x scaling`` with RoPE at (i, j).
        shifted: ``(num_layers, num_heads)`` the same at (i + offset, j + offset).
        max_relative_change: ``max |shifted - scores| / (|q| |k| x scaling)`` over layers and heads: the change
            relative to the largest score the two vectors can produce (a ratio to the score itself would blow up
            where a score happens to be near zero).
    """

    scores: np.ndarray
    shifted: np.ndarray
    max_relative_change: float


@dataclass(frozen=True)
class RopeResult:
    """What :func:`run` measured.

    Attributes:
        model: model name. bases: the model's rotary frequencies (:class:`RopeBase`, global first).
        positions: ``(i, j)`` query and key positions (tokens). offset: the shift (tokens).
        layer, head: the layer and query head whose score is reported as ``score`` / ``shifted_score``.
        rope: the RoPE :class:`ShiftCheck`. absolute: the same check with absolute positions added (fails).
        growth_offsets: ``(k,)`` offsets (tokens) of the float-error curve.
        growth_change: ``(k,)`` max relative score change at each offset (float32 RoPE).
        growth_angle_error: ``(k,)`` max ``|angle_fp32 - angle_exact|`` in radians at position i + offset.
        query_token, key_token: the passage tokens the vectors come from. notices: caps applied.
    """

    model: str
    bases: tuple[RopeBase, ...]
    positions: tuple[int, int]
    offset: int
    layer: int
    head: int
    rope: ShiftCheck
    absolute: ShiftCheck
    growth_offsets: np.ndarray
    growth_change: np.ndarray
    growth_angle_error: np.ndarray
    query_token: str
    key_token: str
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("engine forward + model's apply_rotary_pos_emb"))

    @property
    def angles_provenance(self) -> Provenance:
        """Where the rotation-angle figure comes from: a formula, ``cos(position x inv_freq)`` (RoPE, Su et al.
        2021) on the frequencies read from the model's rotary module, not a measured activation (``when`` and
        ``model`` as :attr:`provenance`)."""
        return dataclasses.replace(formula("cos(position x inv_freq), RoPE (Su et al. 2021), inv_freq read from "
                                           "the model's rotary module", model=self.provenance.model or self.model),
                                   when=self.provenance.when)

    @property
    def inv_freq(self) -> np.ndarray:
        """``(head_dim // 2,)`` frequencies of the first base (the global one for Gemma), radians per token."""
        return self.bases[0].inv_freq

    def to_api(self) -> dict:
        """JSON form (the /rope API): ``inv_freq``, ``angles_i``, ``angles_j`` (radians, float32 as the model
        forms them), ``score``, ``shifted_score``, ``max_score_change_under_shift`` (relative, over layers and
        heads) plus ``absolute_max_score_change``, ``error_growth``, ``bases``, ``layer``, ``head``."""
        i, j = self.positions
        inv = self.inv_freq.astype(np.float32)
        return {
            "model": self.model, "positions": [i, j], "offset": self.offset,
            "inv_freq": [float(x) for x in inv],
            "angles_i": [float(x) for x in np.float32(i) * inv],
            "angles_j": [float(x) for x in np.float32(j) * inv],
            "score": float(self.rope.scores[self.layer, self.head]),
            "shifted_score": float(self.rope.shifted[self.layer, self.head]),
            "max_score_change_under_shift": self.rope.max_relative_change,
            "absolute_max_score_change": self.absolute.max_relative_change,
            "layer": self.layer, "head": self.head,
            "error_growth": [{"offset": int(o), "max_score_change": float(c), "max_angle_error": float(a)}
                             for o, c, a in zip(self.growth_offsets, self.growth_change, self.growth_angle_error)],
            "bases": [b.to_api() for b in self.bases],
            "notices": list(self.notices), "provenance": self.provenance.to_api(),
        }


def capture_qk(engine: Engine, ids) -> tuple:
    """Pre-rotation query and key vectors of every layer from one locked forward pass.

    Hooks ``q_norm``/``k_norm`` when the attention module has them (Gemma 3 normalises before RoPE), else
    ``q_proj``/``k_proj``, as :class:`explorer.core.patches.ForwardHook` patches of that one pass.

    Returns:
        ``(q, k)`` float32 CPU tensors of shape ``(num_layers, num_heads, n, head_dim)`` and
        ``(num_layers, num_kv_heads, n, head_dim)``, and the attention modules' ``scaling`` list.
    """
    layers = decoder_core(engine).layers
    captured: dict[tuple[int, str], object] = {}
    patches = []

    def hook(index, name):
        def store(_module, _inputs, output):
            captured[(index, name)] = output.detach().float().cpu()
        return store

    scalings = []
    for index, layer in enumerate(layers):
        attn = layer.self_attn
        scalings.append(float(getattr(attn, "scaling", attn.head_dim ** -0.5)))
        for name in ("q", "k"):
            module = getattr(attn, f"{name}_norm", None) or getattr(attn, f"{name}_proj")
            patches.append(ForwardHook(module, hook(index, name)))
    engine.forward(ids, logits_to_keep=1, patches=patches)
    head_dim = int(layers[0].self_attn.head_dim)

    def stack(name):
        parts = []
        for index in range(len(layers)):
            t = captured[(index, name)]
            parts.append(t.reshape(t.shape[0], t.shape[1], -1, head_dim)[0].transpose(0, 1))
        import torch
        return torch.stack(parts)
    return stack("q"), stack("k"), scalings


def _base_for_layer(bases, index: int) -> RopeBase:
    return next(b for b in bases if index in b.layers)


def _scores(engine, bases, q, k, scalings, positions) -> np.ndarray:
    """``(num_layers, num_heads, len(positions)//2)`` RoPE scores: query at positions[2m], key at positions[2m+1]."""
    import torch

    rotate = apply_rotary_fn(engine)
    n_layers, n_heads = q.shape[0], q.shape[1]
    group = n_heads // k.shape[1]
    out = np.zeros((n_layers, n_heads, len(positions) // 2))
    tables = {b.layer_type: [t.float().cpu() for t in cos_sin(engine, positions, b.layer_type)] for b in bases}
    for index in range(n_layers):
        cos, sin = tables[_base_for_layer(bases, index).layer_type]
        qs = q[index].unsqueeze(1).expand(-1, len(positions), -1)  # (heads, P, d)
        ks = k[index].repeat_interleave(group, 0).unsqueeze(1).expand(-1, len(positions), -1)
        q_rot, k_rot = rotate(qs.unsqueeze(0), ks.unsqueeze(0), cos, sin)
        q_rot, k_rot = q_rot[0], k_rot[0]
        dots = (q_rot[:, 0::2] * k_rot[:, 1::2]).sum(-1) * scalings[index]
        out[index] = dots.double().numpy()
    return out


def _relative_change(before: np.ndarray, after: np.ndarray, bound: np.ndarray) -> float:
    """``max |after - before| / bound`` over layers and heads; ``bound`` ``(num_layers, num_heads)`` is the largest
    score the pair can reach, ``|q| |k| x scaling`` (Cauchy-Schwarz), so near-zero scores do not blow it up."""
    return float((np.abs(after - before) / np.maximum(bound, 1e-30)).max())


def score_bound(q, k, scalings) -> np.ndarray:
    """``(num_layers, num_heads)`` ``|q| |k| x scaling`` of each layer's query and (group-shared) key vectors."""
    qn = np.linalg.norm(np.asarray(q, dtype=np.float64), axis=-1)
    kn = np.linalg.norm(np.asarray(k, dtype=np.float64), axis=-1)
    kn = np.repeat(kn, qn.shape[1] // kn.shape[1], axis=1)
    return qn * kn * np.asarray(scalings)[:, None]


def sinusoid(position: int, dim: int) -> np.ndarray:
    """Sinusoidal absolute position vector ``(dim,)`` (Vaswani et al. 2017, section 3.5, base 10,000)."""
    pairs = np.arange(dim // 2)
    angle = position / 10000.0 ** (2 * pairs / dim)
    return np.concatenate([np.sin(angle), np.cos(angle)])


def absolute_scores(q, k, scalings, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """``(num_layers, num_heads)`` scores when a sinusoid (scaled to each vector's RMS) is ADDED to q and k, and
    the :func:`score_bound` of those position-carrying vectors."""
    qn, kn = q.double().numpy(), k.double().numpy()
    group = qn.shape[1] // kn.shape[1]
    kn = np.repeat(kn, group, axis=1)
    dim = qn.shape[-1]
    pi, pj = sinusoid(i, dim), sinusoid(j, dim)
    rms_q = np.sqrt((qn ** 2).mean(-1, keepdims=True))
    rms_k = np.sqrt((kn ** 2).mean(-1, keepdims=True))
    qa, ka = qn + rms_q * pi, kn + rms_k * pj
    bound = np.linalg.norm(qa, axis=-1) * np.linalg.norm(ka, axis=-1) * np.asarray(scalings)[:, None]
    return (qa * ka).sum(-1) * np.asarray(scalings)[:, None], bound


def growth_offsets(limit: int) -> list[int]:
    """Offsets 0, 16, 64, ... (powers of 4) up to ``limit`` and ``limit`` itself."""
    values, value = [0], 16
    while value < limit:
        values.append(value)
        value *= 4
    return values + [limit] if limit > 0 else values


def run(text: str | None = None, model: str | None = None, positions=(100, 40), offset: int = 1000,
        layer: int | None = None, head: int = 0, engine: Engine | None = None) -> RopeResult:
    """Measure RoPE's shift invariance on the real model's query and key vectors.

    Args:
        text: passage whose last token gives the query and first token the key (default :data:`DEFAULT_TEXT`).
        positions: ``[i, j]`` positions (tokens) the query and key are rotated to.
        offset: shift added to both (tokens); capped at ``Limits.max_position_offset`` with a notice.
        layer, head: which score is reported as ``score`` (default: the middle layer, head 0).
    Raises:
        ValueError: not a RoPE decoder (MiniLM), positions not two integers, or a position the rotary embedding
            cannot represent (negative, or i/j + offset at or beyond 2**24).
    """
    engine = engine or get_engine(model)
    require_rope(engine, "The RoPE view")
    notices: list[str] = []
    if not isinstance(positions, (list, tuple)) or len(positions) != 2:
        raise ValueError(f"positions must be a list of two integers [i, j] (got {positions!r}).")
    i = check_int(positions[0], "positions[0] (i)")
    j = check_int(positions[1], "positions[1] (j)")
    offset = check_int(offset, "offset")
    for name, value in (("positions[0] (i)", i), ("positions[1] (j)", j),
                        ("positions[0] + offset", i + offset), ("positions[1] + offset", j + offset)):
        check_position(value, name)
    offset = check_int(offset, "offset", cap=get_limits().max_position_offset, notices=notices)
    ids = engine.encode(check_text(text if text is not None else DEFAULT_TEXT))
    bases = tuple(rope_bases(engine))
    q, k, scalings = capture_qk(engine, ids)
    q_vec, k_vec = q[:, :, -1], k[:, :, 0]
    scores = _scores(engine, bases, q_vec, k_vec, scalings, [i, j, i + offset, j + offset])
    bound = score_bound(q_vec, k_vec, scalings)
    rope = ShiftCheck(scores[..., 0], scores[..., 1], _relative_change(scores[..., 0], scores[..., 1], bound))
    (a0, abs_bound), (a1, _) = (absolute_scores(q_vec, k_vec, scalings, i, j),
                                absolute_scores(q_vec, k_vec, scalings, i + offset, j + offset))
    absolute = ShiftCheck(a0, a1, _relative_change(a0, a1, abs_bound))
    limit = MAX_GROWTH - max(i, j)
    offs = growth_offsets(max(0, limit))
    flat = [p for o in offs for p in (i + o, j + o)]
    grid = _scores(engine, bases, q_vec, k_vec, scalings, flat)
    change = np.array([_relative_change(grid[..., 0], grid[..., m], bound) for m in range(len(offs))])
    inv = bases[0].inv_freq.astype(np.float32)
    angle_error = np.array([float(np.abs((np.float32(i + o) * inv).astype(np.float64)
                                         - (i + o) * inv.astype(np.float64)).max()) for o in offs])
    n_layers = q.shape[0]
    layer = n_layers // 2 if layer is None else check_int(layer, "layer", minimum=0, cap=n_layers - 1)
    head = check_int(head, "head", minimum=0, cap=q.shape[1] - 1)
    tok = engine.tokenizer.convert_ids_to_tokens
    return RopeResult(engine.name, bases, (i, j), offset, layer, head, rope, absolute, np.array(offs),
                      change, angle_error, str(tok(ids[-1])), str(tok(ids[0])), tuple(notices),
                      measured("engine forward (hooks on q/k projections) + the model's apply_rotary_pos_emb",
                               model=engine.name))


MAX_GROWTH = 2**24 - 1


def iter_run(text: str | None = None, model: str | None = None, positions=(100, 40), offset: int = 1000,
             layer: int | None = None, head: int = 0, engine: Engine | None = None):
    """The lens contract's form of :func:`run` (/rope): a :class:`Progress` while the one forward pass captures
    the queries and keys, then the :class:`RopeResult`. Raises ``ValueError`` as :func:`run`."""
    yield Progress(0.0, "capturing queries and keys (one forward pass), then rotating them")
    yield run(text, model, positions, offset, layer, head, engine)


def angle_table(inv_freq: np.ndarray, max_position: int, points: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Rotation angles for a heatmap: positions ``(points,)`` and angles ``(head_dim // 2, points)`` in radians
    (``position x inv_freq``, wrapped to [-pi, pi))."""
    positions = np.linspace(0, max(1, max_position), points)
    angles = np.outer(inv_freq.astype(np.float64), positions)
    return positions, (angles + math.pi) % (2 * math.pi) - math.pi
