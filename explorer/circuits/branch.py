"""Branching: pick another token at any step of a continuation and continue from it (``/branch``).

A branch forces ``token_id`` at generated position ``position`` of its parent (the strategy's own continuation of
the prompt when ``parent`` is None, else an earlier branch of the same session) and continues with the strategy and
seed through ``Engine.steps`` (one model turn per token; the first pass's ``select`` returns the forced token, the
later ones are :class:`explorer.decoding.sampling.Column`'s choice, so penalties and the private seeded generator
work exactly as in the Decoding tab). Branches form one tree per session (:class:`BranchTrees`): each node keeps
its token ids, their probabilities under the unprocessed model distribution and its parent; ids are random, so a
node id never finds another session's node. Sources: SillyTavern's token-probability branching; NDIF Workbench's
branching generations (the idea); the maths is ``model.generate`` on the forced prefix (tested).
"""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from explorer.core.config import get_limits
from explorer.core.engine import Engine, get_engine
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_int, check_max_new_tokens, check_text, require_causal
from explorer.decoding import parse_strategy
from explorer.decoding.sampling import Column


@dataclass(frozen=True)
class BranchNode:
    """One branch of a session's tree.

    Attributes:
        branch_id: random hex id (unique across sessions).
        parent: the parent branch's id, or None (the branch forks the strategy's own continuation).
        model, text, chat_template: the request it came from (a child must use the same ones).
        context: the token ids fed before the forced token (prompt + the parent's tokens before ``position``).
        prompt_len: how many of ``context``'s ids are the prompt.
        tokens: generated ids, the forced token first (an end-of-sequence token included when it ended the run).
        probs: each token's probability under the unprocessed next-token distribution, aligned with ``tokens``.
        texts: each token's text.
        strategy: the strategy dict used for the continuation.
        content: the branch's own text (its tokens, end-of-sequence dropped).
        notices: capped values and pruned branches, for the reader.
        provenance: measured on the model.
    """

    branch_id: str
    parent: str | None
    model: str
    text: str
    chat_template: bool
    context: tuple[int, ...]
    prompt_len: int
    tokens: tuple[int, ...]
    probs: tuple[float, ...]
    texts: tuple[str, ...]
    strategy: dict
    content: str
    notices: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: measured("Engine.steps with the forced token"))

    @property
    def generated(self) -> tuple[int, ...]:
        """Every generated id of this branch's sequence: the ancestors' tokens before the fork, then ``tokens``."""
        return tuple(self.context[self.prompt_len:]) + self.tokens

    def to_api(self) -> dict:
        """``/branch``'s JSON: ``{"branch_id", "parent", "tokens": [{"id", "text", "p"}], "text", "notices"}``."""
        return {"branch_id": self.branch_id, "parent": self.parent, "text": self.content,
                "tokens": [{"id": int(i), "text": t, "p": float(p)} for i, t, p in zip(self.tokens, self.texts,
                                                                                      self.probs)],
                "notices": list(self.notices)}


class BranchTrees:
    """Branch trees per session owner, at most ``Limits.max_branches`` nodes each (the oldest pruned, with a notice).

    Thread-safe; :meth:`forget` frees a session's tree (the app calls it when the page unloads).
    """

    def __init__(self):
        self._trees: dict[str, OrderedDict[str, BranchNode]] = {}
        self._lock = threading.Lock()

    def get(self, owner: str, branch_id: str) -> BranchNode:
        """The node ``branch_id`` of ``owner``'s tree. Raises ValueError (naming ``parent``) when it is unknown."""
        with self._lock:
            node = self._trees.get(owner, {}).get(str(branch_id))
        if node is None:
            raise ValueError(f"parent {branch_id!r} is not a branch of this session (unknown, pruned or freed).")
        return node

    def add(self, owner: str, node: BranchNode) -> list[str]:
        """Store ``node``; returns notices about pruned nodes (the oldest go first past the cap)."""
        cap = max(1, get_limits().max_branches)
        with self._lock:
            tree = self._trees.setdefault(owner, OrderedDict())
            tree[node.branch_id] = node
            pruned = []
            while len(tree) > cap:
                pruned.append(tree.popitem(last=False)[0])
        if pruned:
            return [f"The branch tree holds at most {cap} branches (LLM_EXPLORER_MAX_BRANCHES); the oldest "
                    f"{len(pruned)} ({', '.join(pruned)}) were pruned."]
        return []

    def nodes(self, owner: str) -> list[BranchNode]:
        """``owner``'s nodes, oldest first."""
        with self._lock:
            return list(self._trees.get(owner, {}).values())

    def forget(self, owner: str) -> None:
        """Free ``owner``'s tree."""
        with self._lock:
            self._trees.pop(owner, None)


TREES = BranchTrees()


def _continue(engine: Engine, ids: list[int], strategy, n: int, forced: int | None):
    """``n`` tokens after ``ids`` through ``Engine.steps``: the first is ``forced`` (when given), the rest the
    strategy's choice; returns ``(tokens, probs)``, probabilities from the raw softmax of each pass's logits."""
    import torch

    column = Column(engine, ids, strategy, record=False)
    tokens, probs = [], []

    def select(logits, index):
        return int(forced) if index == 0 and forced is not None else column.select(logits, index - (forced is not None))

    for step in engine.steps(ids, n, select=select):
        column.accept(step.token)
        tokens.append(step.token)
        probs.append(float(torch.softmax(step.logits.double(), dim=-1)[step.token]))
    return tokens, probs


def run_branch(text: str, model: str | None = None, position: int = 0, token_id: int = 0, strategy=None,
               max_new_tokens: int = 16, parent: str | None = None, chat_template: bool = True,
               owner: str = "", engine: Engine | None = None, trees: BranchTrees = TREES,
               prompt_ids=None) -> BranchNode:
    """Fork a continuation of ``text`` at generated ``position`` with ``token_id`` and continue from it.

    Args:
        text: the prompt (wrapped by the chat template when ``chat_template``).
        position: 0 is the first generated token (of the strategy's continuation, or of ``parent``'s tokens).
        token_id: the token forced there (a row of the embedding matrix, not an end-of-sequence token).
        strategy: a ``/decode`` strategy dict (greedy or sampling; default greedy).
        max_new_tokens: tokens in the branch, the forced one included (capped at ``Limits.max_new_tokens``).
        parent: a branch id of this ``owner``'s tree, or None.
        owner: the session the tree belongs to.
        prompt_ids: the exact token ids to fork after (a tab's own tokenisation, e.g. Next token's plain text up
            to a clicked token); ``text`` then only labels the branch, ``chat_template`` is not applied and
            ``position`` must be 0 (no parent).
    Returns:
        the stored :class:`BranchNode`.
    Raises:
        ValueError: empty text, unknown strategy / beam search, ``position`` past the generated text,
            ``token_id`` outside the embedding rows or an end-of-sequence id, an unknown ``parent``, a prompt
            too long (each message names the argument).
    """
    notices: list[str] = []
    check_text(text, "text")
    engine = engine or get_engine(model)
    require_causal(engine, "Branching")
    max_new_tokens = check_max_new_tokens(max_new_tokens, get_limits().max_new_tokens, notices)
    strategy_dict = dict(strategy or {"name": "greedy"})
    parsed = parse_strategy(strategy_dict, int(engine.config.vocab_size), get_limits().max_beams, notices)
    if not parsed.spec.stepwise:
        raise ValueError(f"strategy: {parsed.name!r} cannot branch token by token; use greedy or sampling.")
    rows = int(engine.model.get_input_embeddings().weight.shape[0])
    token_id = check_int(token_id, "token_id", minimum=0)
    if token_id >= rows:
        raise ValueError(f"token_id {token_id} is outside the model's {rows:,} embedding rows.")
    if token_id in engine.eos_token_ids():
        raise ValueError(f"token_id {token_id} is an end-of-sequence token: there is nothing to continue from it.")
    position = check_int(position, "position", minimum=0)
    if parent is not None and str(parent) != "":
        node = trees.get(owner, str(parent))
        if node.model != engine.name or node.text != text or node.chat_template != bool(chat_template):
            raise ValueError(f"parent {parent!r} was made from another prompt or model; branch with its own.")
        if position >= len(node.tokens):
            raise ValueError(f"position {position} is past the parent's {len(node.tokens)} generated tokens.")
        context = list(node.context) + list(node.tokens[:position])
        prompt_len = node.prompt_len
    else:
        parent = None
        if prompt_ids is not None:
            prompt = [check_int(i, "prompt_ids", minimum=0) for i in prompt_ids]
            if not prompt or max(prompt) >= rows:
                raise ValueError(f"prompt_ids must be a non-empty list of ids below {rows:,}.")
            if position:
                raise ValueError(f"position must be 0 with prompt_ids (the fork is right after them), got {position}.")
        else:
            prompt = engine.chat_ids(text) if chat_template else engine.encode(text)
        prefix = _continue(engine, prompt, parsed, position, None)[0] if position else []
        eos = engine.eos_token_ids()
        if len(prefix) < position or any(t in eos for t in prefix):
            raise ValueError(f"position {position} is past the generated text (it ends after {len(prefix)} tokens).")
        context = prompt + prefix
        prompt_len = len(prompt)
    engine.check_length(len(context) + max_new_tokens)
    tokens, probs = _continue(engine, context, parsed, max_new_tokens, token_id)
    eos = engine.eos_token_ids()
    content = [t for t in tokens if t not in eos]
    node = BranchNode(branch_id=secrets.token_hex(6), parent=parent, model=engine.name, text=text,
                      chat_template=bool(chat_template), context=tuple(context), prompt_len=prompt_len,
                      tokens=tuple(tokens),
                      probs=tuple(probs), texts=tuple(engine.tokenizer.decode([t]) for t in tokens),
                      strategy=strategy_dict, content=engine.tokenizer.decode(content, skip_special_tokens=True),
                      notices=tuple(notices))
    pruned = trees.add(owner, node)
    if pruned:
        node = BranchNode(**{**node.__dict__, "notices": tuple(notices + pruned)})
        trees.add(owner, node)
    return node


def compare(a: BranchNode, b: BranchNode) -> list[dict]:
    """Two branches of one prompt token by token over their whole generated sequences (:attr:`BranchNode.generated`):
    ``[{"index", "a", "b", "same"}]`` up to the longer one (a missing token is ``None``).

    Raises:
        ValueError: the branches come from different prompts or models.
    """
    if (a.model, a.text, a.chat_template) != (b.model, b.text, b.chat_template):
        raise ValueError("branches: compare two branches of the same prompt and model.")
    seq_a, seq_b = a.generated, b.generated
    return [{"index": i, "a": seq_a[i] if i < len(seq_a) else None, "b": seq_b[i] if i < len(seq_b) else None,
             "same": i < len(seq_a) and i < len(seq_b) and seq_a[i] == seq_b[i]}
            for i in range(max(len(seq_a), len(seq_b)))]


@dataclass(frozen=True)
class Alternatives:
    """A greedy continuation with each step's top-k tokens (what a reader clicks to branch).

    Attributes:
        tokens: the greedy ids, one per step (end-of-sequence included when it ended the run).
        top: per step, ``[(id, text, p)]`` of the ``k`` most probable tokens, most probable first (p: softmax of
            the unprocessed logits).
        provenance: measured on the model.
    """

    tokens: tuple[int, ...]
    top: tuple[tuple[tuple[int, str, float], ...], ...]
    provenance: Provenance


def alternatives(text: str, model: str | None = None, max_new_tokens: int = 12, chat_template: bool = True,
                 k: int = 5, engine: Engine | None = None) -> Alternatives:
    """The greedy continuation of ``text`` (``Engine.steps``) and, at each step, the top ``k`` tokens.

    Raises:
        ValueError: empty text, non-causal model, ``max_new_tokens`` below 1, ``k`` below 1, a prompt too long.
    """
    import torch

    check_text(text, "text")
    engine = engine or get_engine(model)
    require_causal(engine, "Branching")
    max_new_tokens = check_max_new_tokens(max_new_tokens, get_limits().max_new_tokens)
    k = check_int(k, "k", minimum=1, cap=50)
    ids = engine.chat_ids(text) if chat_template else engine.encode(text)
    engine.check_length(len(ids) + max_new_tokens)
    tokens, top = [], []
    for step in engine.steps(ids, max_new_tokens):
        probs = torch.softmax(step.logits.double(), dim=-1)
        values, indices = probs.topk(k)
        top.append(tuple((int(i), engine.tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, indices)))
        tokens.append(step.token)
    return Alternatives(tuple(tokens), tuple(top), measured("Engine.steps, greedy", model=engine.name))


def tree_lines(nodes: list[BranchNode]) -> list[tuple[int, BranchNode]]:
    """``nodes`` as a depth-first tree: ``[(depth, node)]``, roots (and children of pruned parents) at depth 0,
    each node followed by its children in the order they were made."""
    ids = {n.branch_id for n in nodes}
    children: dict[str | None, list[BranchNode]] = {}
    for n in nodes:
        children.setdefault(n.parent if n.parent in ids else None, []).append(n)
    out: list[tuple[int, BranchNode]] = []

    def walk(key, depth):
        for child in children.get(key, []):
            out.append((depth, child))
            walk(child.branch_id, depth + 1)

    walk(None, 0)
    return out
