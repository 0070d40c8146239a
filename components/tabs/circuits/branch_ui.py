"""The Circuits tab's "Branch" section: a greedy continuation with each step's top tokens; a click on any of them
forks the generation there (``explorer.circuits.branch``), the session's branches are drawn as a tree, and two
branches are compared token by token. ``/branch`` is the JSON API (the branch tree belongs to the caller's session).
"""
from __future__ import annotations

import html

import gradio as gr

from components.badge import badged_table
from components.branching import build_compare, tree_outputs
from components.errors import ui_errors
from explorer.circuits import branch as br

K = 5
HEADERS = ["position"] + [f"#{i + 1}" for i in range(K)]


def _owner(request) -> str:
    return getattr(request, "session_hash", None) or ""


def _cell(token: tuple) -> str:
    return f"{token[1]!r} {token[2]:.3f}"


def tree_md(nodes: list) -> str:
    """The session's branches as a nested Markdown list: each node's id, forced token, its probability and text."""
    if not nodes:
        return "_No branches yet._"
    lines = []
    for depth, node in br.tree_lines(nodes):
        lines.append(f"{'  ' * depth}- `{node.branch_id}` forced {html.escape(repr(node.texts[0]))} "
                     f"(p = {node.probs[0]:.3f}): {html.escape(node.content[:120])}")
    return "\n".join(lines)


def branch_api(text: str, model: str | None = None, position: int = 0, token_id: int = 0, strategy: dict | None = None,
               max_new_tokens: int = 16, parent: str | None = None, chat_template: bool = True,
               request: gr.Request = None) -> dict:
    """JSON API ``/branch``: ``{"branch_id", "parent", "tokens": [{"id", "text", "p"}], "text", "notices"}``
    (``tokens`` starts with the chosen token; ``parent`` must be a branch id of the same session)."""
    try:
        node = br.run_branch(text, model or None, position, token_id, strategy, max_new_tokens, parent or None,
                             bool(chat_template), owner=_owner(request))
        return node.to_api()
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def _free_branches(request: gr.Request):
    """Free the session's branch tree when its page unloads (every tab's branches share that one tree)."""
    br.TREES.forget(_owner(request))


def build_branch_section(ctx, chat) -> dict:
    """Build the "Branch" section (inside the Circuits tab); returns its components by name."""
    gr.Markdown("### Branch: pick another token and continue\nThe greedy continuation of the prompt, one row per "
                "generated token, with the five most probable tokens at that step (probability before any "
                "sampler). **Click any token** to force it there and continue greedily from it; branches of "
                "branches form a tree (kept for this session only).")
    with gr.Row():
        steps = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=12, step=1, label="tokens to generate")
        length = gr.Slider(1, min(64, ctx.limits.max_new_tokens), value=12, step=1, label="tokens per branch")
        run = gr.Button("Generate", variant="primary", elem_id="circuits-branch-run")
    alt_state = gr.State(None)
    alt_badge, alt_table = badged_table(headers=HEADERS, interactive=False, elem_id="circuits-branch-table")
    branch_out = gr.Markdown(elem_id="circuits-branch-out")
    tree = gr.Markdown(elem_id="circuits-branch-tree")
    tree_plot, first, second, compared = build_compare("circuits")

    @ui_errors
    def _alternatives(text, model, n, use_chat):
        result = br.alternatives(text, model, int(n), bool(use_chat), K)
        rows = [[i] + [_cell(t) for t in top] for i, top in enumerate(result.top)]
        state = {"text": text, "model": model, "chat": bool(use_chat), "top": [[t[0] for t in top] for top in result.top]}
        return state, result.provenance, rows

    @ui_errors
    def _branch(state, n, evt: gr.SelectData, request: gr.Request):
        if not state or evt.index is None:
            raise ValueError("Generate first, then click a token in the table.")
        row, column = int(evt.index[0]), int(evt.index[1])
        if column < 1:
            raise ValueError("Click a token (columns #1 to #5), not the position.")
        owner = _owner(request)
        node = br.run_branch(state["text"], state["model"], row, state["top"][row][column - 1],
                             {"name": "greedy"}, int(n), None, state["chat"], owner=owner)
        text, figure, first_, second_ = tree_outputs(node, owner)
        return text, tree_md(br.TREES.nodes(owner)), figure, first_, second_

    run.click(_alternatives, [ctx.prompt, ctx.model, steps, chat], [alt_state, alt_badge, alt_table],
              api_visibility="private", concurrency_id="circuits-model")
    alt_table.select(_branch, [alt_state, length], [branch_out, tree, tree_plot, first, second],
                     api_visibility="private", concurrency_id="circuits-model")
    gr.api(branch_api, api_name="branch")
    from gradio.context import Context

    if Context.root_block is not None:
        Context.root_block.unload(_free_branches)
    return {"branch_run": run, "branch_table": alt_table, "branch_out": branch_out, "branch_tree": tree,
            "branch_tree_plot": tree_plot, "branch_compared": compared}
