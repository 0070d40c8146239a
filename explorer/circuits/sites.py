"""Where activations are read and patched: the three patching sites as nnsight accesses on the shadow tree.

Sites (the names of ``/patch``'s ``site``):

- ``resid``: the residual stream. Row 0 is the embeddings (``embed_tokens``' output, Gemma's scale included),
  row ``l + 1`` the output of block ``l``; the last row is the final residual stream (before the final norm).
  Columns are positions.
- ``attn_head``: one attention head's output before the output projection (the head's slice of ``o_proj``'s
  input, ``d_head`` wide), patched at every position. Rows are layers, columns heads.
- ``mlp``: the MLP's output (before Gemma's post-feed-forward norm). Rows are layers, columns positions.

Every function here runs inside an nnsight trace body (``explorer.core.intervene``) and touches modules in
execution order.
"""
from __future__ import annotations

from explorer.core.intervene import decoder

SITES: tuple[str, ...] = ("resid", "attn_head", "mlp")


def check_site(site: str) -> str:
    """``site`` if known.

    Raises:
        ValueError: an unknown site (the message names ``site`` and lists the known ones).
    """
    if site not in SITES:
        raise ValueError(f"site must be one of {list(SITES)} (got {site!r}).")
    return site


def grid_shape(config, site: str, n_tokens: int) -> tuple[int, int]:
    """``(rows, columns)`` of a patching grid: ``(L + 1, n)`` resid, ``(L, H)`` attn_head, ``(L, n)`` mlp."""
    layers = int(config.num_hidden_layers)
    if site == "resid":
        return layers + 1, n_tokens
    if site == "attn_head":
        return layers, int(config.num_attention_heads)
    return layers, n_tokens


def head_dim(config) -> int:
    """Width of one head's output (``head_dim``, else hidden size / heads)."""
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def site_module(wrapped, site: str, row: int):
    """The envoy whose value a grid row reads: see the module docstring (``attn_head`` reads ``o_proj``'s input)."""
    dec = decoder(wrapped)
    if site == "resid":
        return dec.embed_tokens if row == 0 else dec.layers[row - 1]
    if site == "attn_head":
        return dec.layers[row].self_attn.o_proj
    return dec.layers[row].mlp


def site_value(wrapped, site: str, row: int):
    """The real tensor of a grid row in this pass: ``(batch, n, d_model)``, or ``(batch, n, H * d_head)``."""
    module = site_module(wrapped, site, row)
    return module.input if site == "attn_head" else module.output


def read_all(wrapped, site: str, rows: int, store: dict, grad: bool = False) -> None:
    """Save every row's tensor of ``site`` into ``store["acts"]`` (a list, row order).

    With ``grad``, the first tensor read is marked ``requires_grad_`` (for ``resid`` and ``mlp`` the embeddings,
    for ``attn_head`` the first head input), so every later activation is in the autograd graph of the logits.
    """
    from explorer.core.intervene import save

    acts = []
    if grad and site != "resid":
        embeddings = decoder(wrapped).embed_tokens.output
        embeddings.requires_grad_(True)
    for row in range(rows):
        value = site_value(wrapped, site, row)
        if grad and site == "resid" and row == 0:
            value.requires_grad_(True)
        acts.append(save(value))
    store["acts"] = acts


def write_cells(wrapped, site: str, batch_cells: list[list[tuple[int, int]]], clean: list, d_head: int) -> None:
    """Patch clean activations into a batch: batch row ``b`` gets every ``(row, column)`` cell of ``batch_cells[b]``.

    Args:
        wrapped: the traced shadow (inside a trace body).
        site: one of :data:`SITES`.
        batch_cells: per batch row, the grid cells to patch in it.
        clean: per grid row, the clean run's tensor ``(1, n, width)``.
        d_head: one head's width (``attn_head``).
    """
    by_row: dict[int, list[tuple[int, int]]] = {}
    for b, cells in enumerate(batch_cells):
        for row, column in cells:
            by_row.setdefault(row, []).append((b, column))
    for row in sorted(by_row):
        value = site_value(wrapped, site, row)
        source = clean[row][0]
        for b, column in by_row[row]:
            if site == "attn_head":
                part = slice(column * d_head, (column + 1) * d_head)
                value[b, :, part] = source[:, part]
            else:
                value[b, column] = source[column]
