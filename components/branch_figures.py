"""The branch tree figure (pure: nodes -> plotly), shared by every tab with a "continue from here" panel
(``components/branching.py``). Theme-neutral; the badge is drawn above the plot area from the figure's stamp."""
from __future__ import annotations

import html

import plotly.graph_objects as go

from components.theme import neutral

TEMPLATE = "none"


def empty_tree(message: str) -> go.Figure:
    """A blank figure with ``message`` in the middle (no branches yet)."""
    fig = go.Figure(layout={"template": TEMPLATE, "height": 200, "xaxis": {"visible": False},
                            "yaxis": {"visible": False}})
    fig.add_annotation(text=html.escape(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return neutral(fig)


def branch_tree_figure(nodes: list) -> go.Figure:
    """The session's branch tree: one marker per branch at (depth, depth-first order), a line to its parent (or to
    its prompt's root on the left), labelled with the forced token and its probability; hover shows the text.

    Args:
        nodes: :class:`explorer.circuits.branch.BranchNode` list, oldest first (``BranchTrees.nodes``).
    """
    from explorer.circuits.branch import tree_lines

    if not nodes:
        return empty_tree("No branches yet: click an alternative token.")
    lines = tree_lines(nodes)
    roots = list(dict.fromkeys((n.model, n.text) for n in nodes))
    where, ys = {}, {}
    for row, (depth, node) in enumerate(lines):
        where[node.branch_id] = (depth, -row)
    for key in roots:
        rows = [where[n.branch_id][1] for d, n in lines if d == 0 and (n.model, n.text) == key]
        ys[key] = sum(rows) / len(rows) if rows else 0.0
    edge_x, edge_y = [], []
    for depth, node in lines:
        x, y = where[node.branch_id]
        px, py = where[node.parent] if depth else (-1, ys[(node.model, node.text)])
        edge_x += [px, px + 0.5, x, None]
        edge_y += [py, y, y, None]
    fig = go.Figure(go.Scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "rgba(128,128,128,0.7)"},
                               hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=[-1] * len(roots), y=[ys[k] for k in roots], mode="markers+text",
                             marker={"size": 12, "color": "#666", "symbol": "square"}, textposition="bottom center",
                             text=[html.escape(k[1][:24]) + ("…" if len(k[1]) > 24 else "") for k in roots],
                             hovertext=[html.escape(f"{k[0]}: {k[1]}") for k in roots], hoverinfo="text",
                             showlegend=False))
    fig.add_trace(go.Scatter(
        x=[where[n.branch_id][0] for _, n in lines], y=[where[n.branch_id][1] for _, n in lines],
        mode="markers+text", marker={"size": 14, "color": "#e66101"}, textposition="middle right",
        text=[f"{html.escape(repr(n.texts[0]))} p={n.probs[0]:.2f}" for _, n in lines],
        hovertext=[html.escape(f"{n.branch_id}: {n.content[:160]}") for _, n in lines], hoverinfo="text",
        showlegend=False))
    fig.update_layout(template=TEMPLATE, height=max(240, 34 * len(lines) + 100),
                      title={"text": "This session's branches (forced token, its probability)", "x": 0,
                             "xanchor": "left", "font": {"size": 14}},
                      margin={"t": 60, "l": 20, "r": 20, "b": 30},
                      xaxis={"title": "depth (prompt on the left)", "dtick": 1,
                             "range": [-1.5, max(d for d, _ in lines) + 1.5]},
                      yaxis={"visible": False})
    return neutral(fig)
