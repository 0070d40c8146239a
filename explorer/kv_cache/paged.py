"""Paged attention, simulated: contiguous max-length KV allocation vs fixed-size blocks.

Kwon et al. 2023, "Efficient Memory Management for Large Language Model Serving with PagedAttention"
(vLLM, arXiv:2309.06180): a server that reserves one contiguous region of ``max_len`` tokens per
sequence wastes everything the sequence never uses; PagedAttention instead hands out fixed-size
blocks of ``block_size`` tokens on demand and keeps a per-sequence block table (logical block ->
physical block), so only the unfilled tail of each sequence's last block is wasted.

:func:`simulate` grows the sequences one token at a time in round-robin (as concurrent decoding
does), allocating the next free physical block whenever a sequence fills its last one, so block
tables come out interleaved as in a real server. Bytes use the real per-token KV size measured
from the model (``explorer.kv_cache``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from explorer.core.provenance import Provenance, simulated

MAX_SEQUENCES = 64
MAX_SEQUENCE_TOKENS = 1_000_000
MAX_BLOCKS = 20_000


@dataclass(frozen=True)
class PagedResult:
    """Memory of the same sequences under contiguous and paged allocation.

    Attributes:
        lengths: tokens of each sequence, shape (n_seq,).
        max_len: tokens reserved per sequence by the contiguous allocator.
        block_size: tokens per block.
        bytes_per_token: KV bytes of one token (all layers, keys and values).
        block_tables: per sequence, the physical block ids of its logical blocks, in order.
        physical_owner: owning sequence of each physical block, shape (n_blocks,).
        physical_fill: tokens used in each physical block, shape (n_blocks,).
        used_bytes: bytes holding real tokens (same for both schemes).
        contiguous_bytes, paged_bytes: bytes reserved by each scheme.
        provenance: ``simulated`` (a block table computed from the lengths, not a running paged server).
    """

    lengths: np.ndarray
    max_len: int
    block_size: int
    bytes_per_token: int
    block_tables: tuple[tuple[int, ...], ...]
    physical_owner: np.ndarray
    physical_fill: np.ndarray
    used_bytes: int
    contiguous_bytes: int
    paged_bytes: int
    provenance: Provenance = field(default_factory=lambda: simulated(
        "block-table simulation of paged attention (Kwon et al. 2023, vLLM) from the given lengths"))

    @property
    def contiguous_waste_bytes(self) -> int:
        """Reserved but unused bytes with contiguous max-length allocation."""
        return self.contiguous_bytes - self.used_bytes

    @property
    def paged_waste_bytes(self) -> int:
        """Reserved but unused bytes with paged allocation (the tails of last blocks)."""
        return self.paged_bytes - self.used_bytes

    @property
    def contiguous_waste_pct(self) -> float:
        """Wasted share of the contiguous reservation (%)."""
        return 100.0 * self.contiguous_waste_bytes / self.contiguous_bytes if self.contiguous_bytes else 0.0

    @property
    def paged_waste_pct(self) -> float:
        """Wasted share of the paged reservation (%)."""
        return 100.0 * self.paged_waste_bytes / self.paged_bytes if self.paged_bytes else 0.0


def parse_lengths(text: str) -> list[int]:
    """Parse ``"120, 37, 800"`` into sequence lengths (tokens).

    Raises:
        ValueError: empty, not whole numbers, a length below 1 or above the cap, or too many sequences.
    """
    parts = [p for p in (text or "").replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("Give at least one sequence length, e.g. '120, 37, 800'.")
    if len(parts) > MAX_SEQUENCES:
        raise ValueError(f"At most {MAX_SEQUENCES} sequences can be simulated; got {len(parts)}.")
    lengths = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"Sequence lengths must be whole numbers; {part.strip()!r} is not.") from None
        if not 1 <= value <= MAX_SEQUENCE_TOKENS:
            raise ValueError(f"Each sequence length must be between 1 and {MAX_SEQUENCE_TOKENS:,}; got {value:,}.")
        lengths.append(value)
    return lengths


def simulate(lengths: list[int], block_size: int, bytes_per_token: int, max_len: int | None = None) -> PagedResult:
    """Allocate the KV cache of concurrent sequences contiguously and in blocks.

    Args:
        lengths: tokens of each sequence.
        block_size: tokens per block (vLLM's default is 16).
        bytes_per_token: KV bytes per token (``CacheShape.bytes_per_token``).
        max_len: tokens the contiguous allocator reserves per sequence (default: the longest sequence).
    Raises:
        ValueError: block size below 1 or above the longest reservation, ``max_len`` shorter than a sequence,
            or more than :data:`MAX_BLOCKS` blocks.
    """
    lengths = [int(n) for n in lengths]
    if not lengths:
        raise ValueError("Give at least one sequence length.")
    if max_len is not None and not (isinstance(max_len, (int, float)) and math.isfinite(max_len)):
        raise ValueError(f"The contiguous reservation must be a whole number of tokens, got {max_len!r}.")
    max_len = int(max_len or max(lengths))
    if max_len < max(lengths):
        raise ValueError(f"The contiguous reservation ({max_len:,} tokens) is shorter than the longest "
                         f"sequence ({max(lengths):,} tokens).")
    if not 1 <= int(block_size) <= max_len:
        raise ValueError(f"Block size must be between 1 and {max_len:,} tokens; got {block_size}.")
    block_size = int(block_size)
    n_blocks = sum(math.ceil(n / block_size) for n in lengths)
    if n_blocks > MAX_BLOCKS:
        raise ValueError(f"That needs {n_blocks:,} blocks; the simulation draws at most {MAX_BLOCKS:,}. "
                         "Use a larger block size or shorter sequences.")
    tables: list[list[int]] = [[] for _ in lengths]
    owner: list[int] = []
    fill: list[int] = []
    filled = [0] * len(lengths)
    # Round-robin growth; skip ahead a whole block at a time (the allocation order is the same).
    while any(f < n for f, n in zip(filled, lengths)):
        for seq, n in enumerate(lengths):
            if filled[seq] >= n:
                continue
            if filled[seq] % block_size == 0:
                tables[seq].append(len(owner))
                owner.append(seq)
                fill.append(0)
            take = min(block_size - filled[seq] % block_size, n - filled[seq])
            fill[tables[seq][-1]] += take
            filled[seq] += take
    used = sum(lengths) * bytes_per_token
    return PagedResult(np.array(lengths, dtype=np.int64), max_len, block_size, int(bytes_per_token),
                       tuple(tuple(t) for t in tables), np.array(owner, dtype=np.int64),
                       np.array(fill, dtype=np.int64), used, len(lengths) * max_len * bytes_per_token,
                       n_blocks * block_size * bytes_per_token)
