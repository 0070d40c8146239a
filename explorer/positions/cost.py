"""What attention costs: eager attention (materialises the n x n score matrix) vs PyTorch SDPA, on the real model.

Eager attention (``transformers``' ``eager_attention_forward``) forms ``Q K^T`` and its softmax as full
``(batch, heads, n, n)`` tensors, so one layer's scores take ``heads x n^2 x bytes`` (Vaswani et al. 2017);
``torch.nn.functional.scaled_dot_product_attention`` (SDPA) uses a fused kernel that works in tiles and never
keeps the whole matrix (FlashAttention, Dao et al. 2022, arXiv:2205.14135; on CPU PyTorch's flash-attention CPU
kernel). For each length and implementation :func:`iter_run` (one locked pass per row):

- times one forward pass of the whole model (ms, best of ``repeats``, device synchronised);
- records the arguments the first decoder layer's attention module received in that pass (a forward pre-hook,
  removed in ``finally``) and re-runs that module alone under ``torch.profiler`` with ``profile_memory=True``:
  ``peak_bytes`` is the highest running total of the allocations the profiler saw during that attention step;
- keeps the final hidden states (after the last norm) to check both implementations give the same output.

The implementation is switched by an :class:`explorer.core.patches.AttnImplementation` patch inside one locked
block (``Engine.patched``) and restored in ``finally``, so the shared model is never left changed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.patches import AttnImplementation, ForwardHook, PreForwardHook
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, require_causal
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.positions.extension import DEFAULT_PASSAGE
from explorer.positions.model_rope import decoder_core

IMPLEMENTATIONS = ("eager", "sdpa")
MAX_LENGTHS = 12
DEFAULT_LENGTHS = (128, 256, 512, 1024)


@dataclass(frozen=True)
class CostRow:
    """One measurement.

    Attributes:
        length: sequence length (tokens). implementation: ``"eager"`` or ``"sdpa"``.
        ms: wall time of one whole-model forward pass (milliseconds, best of the repeats).
        peak_bytes: peak bytes allocated during one layer's attention step (profiler, ``profile_memory=True``).
        formula_bytes: ``heads x length^2 x bytes_per_element``, one layer's score matrix (bytes).
    """

    length: int
    implementation: str
    ms: float
    peak_bytes: int
    formula_bytes: int


@dataclass(frozen=True)
class CostResult:
    """Rows of :func:`run` plus the output agreement per length.

    Attributes:
        rows: :class:`CostRow` (eager then sdpa per length). max_abs_diff: ``{length: max |eager - sdpa|}`` of
        the final hidden states. max_rel_diff: the same divided by the largest ``|hidden|``.
    """

    model: str
    device: str
    rows: tuple[CostRow, ...]
    max_abs_diff: dict
    max_rel_diff: dict
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("engine forward + torch.profiler"))

    def row(self, length: int, implementation: str) -> CostRow:
        """The row for ``length`` and ``implementation``."""
        return next(r for r in self.rows if r.length == length and r.implementation == implementation)

    def to_api(self) -> dict:
        """JSON (the /attention_cost API): ``{"rows": [{"length", "implementation", "ms", "peak_bytes",
        "formula_bytes"}], "max_abs_diff": [{"length", "value"}], "max_rel_diff": [...], "device", "notices",
        "provenance"}``."""
        return {"model": self.model, "device": self.device,
                "rows": [{"length": r.length, "implementation": r.implementation, "ms": r.ms,
                          "peak_bytes": r.peak_bytes, "formula_bytes": r.formula_bytes} for r in self.rows],
                "max_abs_diff": [{"length": k, "value": v} for k, v in self.max_abs_diff.items()],
                "max_rel_diff": [{"length": k, "value": v} for k, v in self.max_rel_diff.items()],
                "notices": list(self.notices), "provenance": self.provenance.to_api()}


def check_lengths(engine: Engine, lengths, notices: list[str]) -> list[int]:
    """Lengths as sorted unique ints: each at least 2, capped at ``Limits.max_attention_cost_tokens`` (notice).

    Raises:
        ValueError: not a list of integers, more than :data:`MAX_LENGTHS`, below 2.
    """
    if isinstance(lengths, (int, float)) and not isinstance(lengths, bool):
        lengths = [lengths]
    if not isinstance(lengths, (list, tuple)) or not lengths:
        raise ValueError("lengths must be a non-empty list of integers (tokens).")
    if len(lengths) > MAX_LENGTHS:
        raise ValueError(f"lengths has {len(lengths)} entries; at most {MAX_LENGTHS}.")
    cap = min(get_limits().max_attention_cost_tokens, engine.context_length())
    return sorted({check_int(v, f"lengths[{n}]", minimum=2, cap=cap, notices=notices)
                   for n, v in enumerate(lengths)})


def passage_ids(engine: Engine, length: int) -> list[int]:
    """``length`` token ids: the default passage repeated (real text, so attention patterns are realistic)."""
    base = engine.tokenizer(DEFAULT_PASSAGE, add_special_tokens=False)["input_ids"]
    return (base * (length // len(base) + 1))[:length]


def profile_peak_bytes(fn, device) -> int:
    """Peak of the running total of allocations ``torch.profiler`` (``profile_memory=True``) records while
    ``fn()`` runs (bytes; frees count negative). CUDA memory on a GPU, CPU memory otherwise."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = str(device).startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, profile_memory=True) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    wanted = torch.device("cuda" if cuda else "cpu").type
    # every allocation (+bytes) and free (-bytes) the profiler saw, in time order
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and str(e.device_type()).split(".")[-1].lower() == wanted]
    events.sort(key=lambda e: e.start_ns())
    total = peak = 0
    for event in events:
        total += int(event.nbytes())
        peak = max(peak, total)
    return int(peak)


def measure(engine: Engine, ids, implementation: str, repeats: int = 2):
    """One row's numbers: ``(ms, peak_bytes, final hidden states (n, hidden) CPU tensor)``; one locked block."""
    core = decoder_core(engine)
    attn = core.layers[0].self_attn
    seen: dict = {}
    final: dict = {}

    def grab(_module, args, kwargs):
        seen.setdefault("call", (args, dict(kwargs)))

    def keep(_module, _inputs, output):
        final["h"] = output.detach().float().cpu()[0]

    hooks = [PreForwardHook(attn, grab, with_kwargs=True), ForwardHook(core.norm, keep)]
    # one locked block: the implementation holds for the timed passes (hooked) and the profiled attention call
    with engine.patched([AttnImplementation(implementation)]):
        best = float("inf")
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            engine.forward(ids, logits_to_keep=1, use_cache=False, patches=hooks)
            engine.synchronize()
            best = min(best, (time.perf_counter() - start) * 1000.0)
        args, kwargs = seen["call"]
        kwargs.pop("past_key_values", None)  # re-running must not append to a cache
        peak = profile_peak_bytes(lambda: attn(*args, **kwargs), engine.device)
    return best, peak, final["h"]


def iter_run(lengths=DEFAULT_LENGTHS, model: str | None = None, engine: Engine | None = None, repeats: int = 2):
    """Yield ``(done, total)`` after each row, then the :class:`CostResult`.

    Raises:
        ValueError: encoder model, bad lengths (see :func:`check_lengths`).
    """
    engine = engine or get_engine(model)
    require_causal(engine, "The attention cost view")
    notices: list[str] = []
    lens = check_lengths(engine, lengths, notices)
    cfg = engine.config.get_text_config(decoder=True)
    heads = int(cfg.num_attention_heads)
    element = engine.dtype.itemsize if hasattr(engine.dtype, "itemsize") else 4
    rows, abs_diff, rel_diff = [], {}, {}
    for length in lens:
        ids = passage_ids(engine, length)
        outputs = {}
        for impl in IMPLEMENTATIONS:
            ms, peak, hidden = measure(engine, ids, impl, repeats)
            outputs[impl] = hidden
            rows.append(CostRow(length, impl, ms, peak, heads * length * length * element))
            yield len(rows), 2 * len(lens)
        diff = float((outputs["eager"] - outputs["sdpa"]).abs().max())
        abs_diff[length] = diff
        rel_diff[length] = diff / max(float(outputs["eager"].abs().max()), 1e-30)
    yield CostResult(engine.name, str(engine.device), tuple(rows), abs_diff, rel_diff, tuple(notices),
                     measured("whole-model forward timed; first layer's attention step under torch.profiler "
                              "(profile_memory=True)", model=engine.name))


def run(lengths=DEFAULT_LENGTHS, model: str | None = None, engine: Engine | None = None,
        repeats: int = 2) -> CostResult:
    """All rows of :func:`iter_run` at once (errors as there)."""
    result = None
    for item in iter_run(lengths, model, engine, repeats):
        result = item
    return result


def ratio_table(result: CostResult) -> np.ndarray:
    """``(lengths, 7)`` object array: length, eager ms, sdpa ms, eager bytes, sdpa bytes, bytes ratio, formula."""
    out = []
    for length in sorted({r.length for r in result.rows}):
        e, s = result.row(length, "eager"), result.row(length, "sdpa")
        out.append([length, round(e.ms, 1), round(s.ms, 1), e.peak_bytes, s.peak_bytes,
                    round(e.peak_bytes / max(s.peak_bytes, 1), 2), e.formula_bytes])
    return np.array(out, dtype=object)
