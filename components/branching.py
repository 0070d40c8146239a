""""Continue from here with this token": a clickable table of top-k alternatives that forks a generation through
``/branch``'s machinery (``explorer.circuits.branch``), the session's branch tree drawn as a tree and two branches
compared token by token. Shared by Next token, Decoding (step view), the Inspector and the Circuits tab.

A tab fills the panel with :func:`offer`: a *fork* dict saying what a click continues (``text`` and ``chat`` as the
tab forms its prompt, ``model``, ``position`` among generated tokens, the column's ``strategy`` dict, or
``prompt_ids`` for a tab that forks inside its own tokenisation) and the top-k ``(id, text, p)`` at that point.
"""
from __future__ import annotations

import html

import gradio as gr

from components.badge import badge_md, badged_table, stamp
from components.branch_figures import branch_tree_figure
from components.errors import ui_errors
from explorer.circuits import branch as br

HEADERS = ["token", "p", "id"]


def owner_of(request) -> str:
    """The session a branch tree belongs to (gradio's ``session_hash``; "" outside a session)."""
    return getattr(request, "session_hash", None) or ""


def offer(fork: dict | None, top, provenance) -> tuple:
    """``(fork state, provenance for the badge, table rows)`` for the panel: one row per alternative
    ``[repr(text), p, id]``, most probable first; empty when ``fork`` is None."""
    if fork is None:
        return None, None, []
    top = [(int(i), str(t), float(p)) for i, t, p in top]
    return ({**fork, "top": [t[0] for t in top]}, provenance,
            [[repr(t), round(p, 4), i] for i, t, p in top])


def compare_md(a, b) -> str:
    """Two branches token by token (a Markdown table over their whole generated sequences), differing rows bold."""
    rows = br.compare(a, b)
    out = [f"| # | `{a.branch_id}` | `{b.branch_id}` |", "|---|---|---|"]
    texts = {}
    for node in (a, b):
        texts.update(zip(node.tokens, node.texts))
    for r in rows:
        cells = [html.escape(repr(texts.get(r[k], r[k]))) if r[k] is not None else "—" for k in ("a", "b")]
        if not r["same"]:
            cells = [f"**{c}**" for c in cells]
        out.append(f"| {r['index']} | {cells[0]} | {cells[1]} |")
    return "\n".join(out)


def fork(state: dict, token_id: int, n: int, owner: str):
    """Run the branch a click on ``token_id`` asks for; returns the stored node."""
    return br.run_branch(state["text"], state["model"], int(state.get("position", 0)), int(token_id),
                         state.get("strategy") or {"name": "greedy"}, int(n), state.get("parent"),
                         bool(state.get("chat", False)), owner=owner, prompt_ids=state.get("prompt_ids"))


def tree_outputs(node, owner: str) -> tuple:
    """``(branch text, tree figure, first picker, second picker)`` after ``node`` was made."""
    nodes = br.TREES.nodes(owner)
    ids = [x.branch_id for x in nodes]
    notices = "".join(f"\n\n> {html.escape(x)}" for x in node.notices)
    text = (f"{badge_md(node.provenance)}\n\n**Branch `{node.branch_id}`** at position "
            f"{len(node.context) - node.prompt_len} (forced {html.escape(repr(node.texts[0]))}, "
            f"p = {node.probs[0]:.3f}): {html.escape(node.content)}{notices}")
    return (text, stamp(branch_tree_figure(nodes), node.provenance), gr.Dropdown(choices=ids, value=ids[-1]),
            gr.Dropdown(choices=ids, value=ids[-2] if len(ids) > 1 else ids[-1]))


def build_compare(key: str) -> tuple:
    """The tree plot and the two-branch comparison (pickers, button, table); returns ``(tree, first, second,
    compared)`` with the button wired."""
    tree = gr.Plot(branch_tree_figure([]), label="branch tree", elem_id=f"{key}-branch-tree-plot")
    with gr.Row():
        first = gr.Dropdown([], label="compare branch", allow_custom_value=False)
        second = gr.Dropdown([], label="with branch", allow_custom_value=False)
        button = gr.Button("Compare token by token", elem_id=f"{key}-branch-compare")
    compared = gr.Markdown(elem_id=f"{key}-branch-compared")

    @ui_errors
    def _compare(a, b, request: gr.Request):
        if not a or not b:
            raise ValueError("Make two branches, then pick them to compare.")
        owner = owner_of(request)
        return compare_md(br.TREES.get(owner, a), br.TREES.get(owner, b))

    button.click(_compare, [first, second], compared, api_visibility="private")
    return tree, first, second, compared


def on_select(fork_state, n, evt, request):
    """What a tab's ``_branch`` handler returns for a click on row ``evt.index`` of the alternatives table:
    :func:`tree_outputs` of the new branch. Raises ValueError before the view was filled."""
    if not fork_state or evt is None or evt.index is None:
        raise ValueError("Nothing to continue yet: run the view above first, then click a token in the table.")
    row = int(evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index)
    owner = owner_of(request)
    return tree_outputs(fork(fork_state, fork_state["top"][row], n, owner), owner)


def build_branch_panel(ctx, key: str, intro: str, handler) -> dict:
    """The panel: ``intro``, the alternatives table (click a row to fork), the branch's text, the tree and the
    comparison. ``handler(fork_state, n, evt: gr.SelectData, request: gr.Request)`` is the tab's own (defined in
    the tab's module so ZeroGPU wraps it; it returns :func:`on_select`). Returns the components; fill
    ``branch_state``, ``branch_badge``, ``branch_alts`` with :func:`offer`."""
    gr.Markdown(intro)
    state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=2):
            badge, table = badged_table(headers=HEADERS, interactive=False, elem_id=f"{key}-branch-alts")
        with gr.Column(scale=3):
            length = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=12, step=1, label="tokens per branch")
            out = gr.Markdown("_Click an alternative to continue from there with it._", elem_id=f"{key}-branch-out")
    tree, first, second, compared = build_compare(key)
    table.select(handler, [state, length], [out, tree, first, second], api_visibility="private",
                 concurrency_id=f"{key}-branch")
    return {"branch_state": state, "branch_badge": badge, "branch_alts": table, "branch_out": out,
            "branch_tree_plot": tree, "branch_compared": compared}
