"""Provenance badges: every figure and table on the page says where its numbers come from (issue 20.3).

One renderer for the five kinds of :mod:`explorer.core.provenance` (MEASURED, CACHED with when, STORED with
the bench file and command, FORMULA with its source, SIMULATED), fed from the ``provenance`` field of the
result a figure or table was drawn from. Two DOM conventions, one per kind of component:

- **Plots** carry their badge inside the figure. A figure function's caller stamps the result's provenance
  into the figure (:func:`stamp`: ``layout.meta["provenance"]``, the JSON of ``Provenance.to_api()``); every
  ``gr.Plot`` of the app then draws it (:func:`draw`, installed by ``components.theme.theme_plots``) as a
  plotly annotation named ``prov-badge`` at the top right, with the full source on hover. The badge so
  travels with the figure (a downloaded PNG keeps it), and a handler's outputs do not change.
- **Tables** (``gr.Dataframe`` results) sit in a column with class ``prov-badged`` whose first child is a
  badge slot (:func:`badged_table`); the handler returns the result's ``Provenance`` for the slot, which
  renders ``<span class="prov-badge" data-kind="measured" title="full source">``. Input tables the user edits
  carry class ``prov-input`` instead (:data:`INPUT_TABLE`). A Markdown section holding a table (the token
  inspector's) carries class ``prov-badged`` itself and opens with :func:`badge_html`; Gradio's Markdown sanitiser
  drops ``data-kind`` there, so the kind is also in the badge's class ``prov-<kind>``.

A result served again from the result cache turns ``cached`` (``components/serving.py`` calls
:func:`mark_cached` on a handler's outputs, figures included), and the badge says "computed N s ago",
rendered when the value is sent, not when it was computed.
"""
from __future__ import annotations

import datetime
import functools
import html
import time

from explorer.core.provenance import KINDS, Provenance

NAME = "prov-badge"  # the plotly annotation's name and the table badge's CSS class
BADGED = "prov-badged"  # class of the column that holds a table and its badge slot
INPUT_TABLE = "prov-input"  # class of a table the user fills in (settings, training data), not a result
DETAIL_CHARS = 70  # the visible source is cut to this many characters; the hover text has all of it

# one colour per provenance kind, readable on the light and the dark page (the theme's CSS uses them too)
BADGE_COLOURS = {"measured": "#16a34a", "cached": "#0284c7", "stored": "#9333ea", "formula": "#d97706",
                 "simulated": "#dc2626"}


def as_provenance(value) -> Provenance | None:
    """``value`` as a :class:`Provenance`: a Provenance, its ``to_api()`` dict, or anything with a
    ``provenance`` attribute / key holding one of those; ``None`` when there is none."""
    if value is None or isinstance(value, Provenance):
        return value
    if isinstance(value, dict):
        if "kind" in value and "source" in value:
            return Provenance(value["kind"], value.get("source", ""), float(value.get("when") or time.time()),
                              value.get("model", "") or "")
        return as_provenance(value.get("provenance"))
    return as_provenance(getattr(value, "provenance", None))


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


def _short(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS - 1] + "…"


def describe(provenance, now: float | None = None) -> tuple[str, str, str]:
    """``(KIND, detail, full)`` for a provenance (see :func:`as_provenance`).

    ``detail`` is the short visible text: MEASURED names the model (else its source), CACHED says "computed N s ago" (from
    ``when`` to ``now``, Unix seconds, default the current time), STORED names the bench file, FORMULA and
    SIMULATED their source. ``full`` is everything: source (with the command for STORED), model, and the
    UTC date it was computed.

    Raises:
        ValueError: ``provenance`` is ``None`` or has no provenance.
    """
    prov = as_provenance(provenance)
    if prov is None:
        raise ValueError("provenance: nothing to describe (None)")
    now = time.time() if now is None else now
    stamp = datetime.datetime.fromtimestamp(prov.when, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if prov.kind == "measured":
        detail = f"on {prov.model}" if prov.model else prov.source
    elif prov.kind == "cached":
        detail = f"computed {_ago(now - prov.when)}"
    elif prov.kind == "stored":
        detail = prov.source.split(" (", 1)[0]
    else:
        detail = prov.source
    full = f"{prov.kind.upper()}: {prov.source}{' · ' + prov.model if prov.model else ''} · {stamp}"
    return prov.kind.upper(), _short(detail), full


def badge_html(provenance, now: float | None = None) -> str:
    """The table badge: ``<span class="prov-badge prov-<kind>" data-kind="<kind>" title="<full>">``, or ``""``
    for ``None``. Styled by ``components.theme.CSS``."""
    if as_provenance(provenance) is None:
        return ""
    kind, detail, full = describe(provenance, now)
    return (f"<span class='{NAME} prov-{kind.lower()}' data-kind='{kind.lower()}' title='{html.escape(full, True)}'>"
            f"<b>{kind}</b> · {html.escape(detail)}</span>")


def badge_md(provenance, now: float | None = None) -> str:
    """The badge followed by the full source, for a Markdown line under a figure; ``""`` for ``None``."""
    if as_provenance(provenance) is None:
        return ""
    return f"{badge_html(provenance, now)} {html.escape(describe(provenance, now)[2].split(': ', 1)[1])}"


def stamp(fig, provenance):
    """Record ``provenance`` (see :func:`as_provenance`) in ``fig.layout.meta["provenance"]``; returns ``fig``.

    ``None`` (or a value without provenance) leaves the figure as it is: a placeholder without numbers
    needs no badge.
    """
    prov = as_provenance(provenance)
    if fig is None or prov is None:
        return fig
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    fig.update_layout(meta={**meta, "provenance": prov.to_api()})
    return fig


def provenance_of(fig) -> Provenance | None:
    """The provenance :func:`stamp` put on a plotly figure, or ``None``."""
    meta = getattr(getattr(fig, "layout", None), "meta", None)
    return as_provenance(meta.get("provenance")) if isinstance(meta, dict) else None


def draw(fig, now: float | None = None):
    """Draw a stamped figure's badge (in place; returns ``fig``): one annotation named ``prov-badge`` at the top
    right, above the plot area, ``<b>KIND</b> · detail`` with the full source as hover text. Replaces an
    earlier badge, so drawing twice (a re-sent cached figure) leaves one. Unstamped figures are unchanged."""
    prov = provenance_of(fig)
    if prov is None:
        return fig
    kind, detail, full = describe(prov, now)
    kept = [a for a in fig.layout.annotations if a.name != NAME]
    fig.layout.annotations = kept
    fig.add_annotation(name=NAME, text=f"<b>{kind}</b> · {html.escape(detail)}", hovertext=html.escape(full),
                       xref="paper", yref="paper", x=1, y=1, xanchor="right", yanchor="bottom", yshift=6,
                       showarrow=False, font={"size": 11, "color": BADGE_COLOURS[prov.kind]},
                       bordercolor=BADGE_COLOURS[prov.kind], borderwidth=1, borderpad=2)
    return fig


def mark_cached(value):
    """A handler's outputs as served from the result cache: a :class:`Provenance` (a table badge) becomes
    ``cached``, a stamped plotly figure is copied with its stamp turned ``cached``; tuples and lists are
    handled element by element; anything else is returned unchanged. ``when`` is kept (when it was computed).
    """
    if isinstance(value, tuple):
        return tuple(mark_cached(v) for v in value)
    if isinstance(value, list):
        return [mark_cached(v) for v in value]
    if isinstance(value, Provenance):
        return value.as_cached()
    prov = provenance_of(value)
    if prov is not None and prov.kind != "cached":
        return stamp(type(value)(value), prov.as_cached())
    return value


@functools.lru_cache(maxsize=None)
def _slot_class():
    import gradio as gr

    class BadgeSlot(gr.HTML):
        """``gr.HTML`` that renders a :class:`Provenance` (or its dict) as :func:`badge_html` when sent. A subclass,
        so gradio's per-session copy after a ``gr.update`` keeps it; ``is_template``: drawn by ``gr.HTML``'s
        frontend."""

        is_template = True

        def postprocess(self, value):
            return super().postprocess(badge_html(value) if value is not None and not isinstance(value, str)
                                       else value)

    return BadgeSlot


def badge_slot(**kwargs):
    """A ``gr.HTML`` that renders a :class:`Provenance` (or its dict) given as its value as :func:`badge_html`
    when sent (so CACHED's "N s ago" is current); strings pass through. ``kwargs`` go to ``gr.HTML``."""
    return _slot_class()(**kwargs)


def badged_table(provenance=None, **kwargs):
    """A result table with its badge: a ``gr.Column(elem_classes=["prov-badged"])`` holding a badge slot
    (:func:`badge_slot`, showing ``provenance`` first) and a ``gr.Dataframe(**kwargs)``. Returns
    ``(badge, table)``; every handler that fills the table also returns the result's provenance for the badge
    (``tests/contracts/test_badges.py`` checks it)."""
    import gradio as gr

    with gr.Column(elem_classes=[BADGED], min_width=160):
        badge = badge_slot(value=badge_html(provenance), padding=False, elem_classes=[f"{NAME}-slot"])
        table = gr.Dataframe(**kwargs)
    return badge, table


KIND_NAMES = tuple(kind.upper() for kind in KINDS)
