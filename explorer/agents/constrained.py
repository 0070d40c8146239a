"""Grammar-constrained decoding of a step with lm-format-enforcer (Gat 2023, ``lm-format-enforcer``).

Its transformers integration does not import under transformers 5, so the tokenizer data is built here the way
that integration builds it (each token decoded after a "0" token, to tell word-start tokens apart) and the
:class:`lmformatenforcer.TokenEnforcer` is applied as an allowed-token mask inside the ``select`` callback of
:meth:`explorer.core.engine.Engine.steps`: at every step the logits of tokens the grammar forbids are set to
-inf before the greedy pick. The grammar of a step is a call (``<tool_call>`` + JSON matching one tool's schema +
``</tool_call>``) or, unless a call is required, the words ``Answer:`` (the answer's own words then run free);
when a call is complete only the end-of-sequence token remains allowed, so the step ends there.
"""
from __future__ import annotations

import threading

from explorer.agents.format import ANSWER, CALL_CLOSE, CALL_OPEN
from explorer.agents.tools import call_schema

_DATA: dict[int, tuple] = {}
_LOCK = threading.Lock()


def tokenizer_data(tokenizer, eos_ids):
    """The enforcer's view of ``tokenizer`` (built once per tokenizer, ~2 s for SmolLM2's 49k tokens).

    Args:
        tokenizer: a Hugging Face tokenizer. eos_ids: the engine's end-of-sequence ids (the grammar's end).
    """
    from lmformatenforcer import TokenEnforcerTokenizerData

    with _LOCK:
        held = _DATA.get(id(tokenizer))
        if held is not None and held[0] is tokenizer:
            return held[1]
        vocab = len(tokenizer)
        zero = tokenizer.encode("0", add_special_tokens=False)[-1]
        special = set(tokenizer.all_special_ids)
        regular = []
        for index in range(vocab):
            if index in special:
                continue
            after_zero = tokenizer.decode([zero, index])[1:]
            regular.append((index, after_zero, len(after_zero) > len(tokenizer.decode([index]))))

        def decode(ids):
            return tokenizer.decode(ids).rstrip("\ufffd")

        data = TokenEnforcerTokenizerData(regular, decode, sorted(eos_ids), False, vocab)
        _DATA[id(tokenizer)] = (tokenizer, data)
        return data


# Extra tokens a constrained step may use beyond ``Limits.agent_step_tokens``: the grammar allows at most one
# whitespace in a row, fields in order and a 40-character expression, so a whole call fits in the two together.
CALL_ROOM = 48


def step_parser(tools, require_call: bool = False):
    """The character-level grammar of a step's start: a whole call of one of ``tools``, or (unless
    ``require_call``) the words ``Answer:``, after which the answer itself is decoded freely (so only the call
    is constrained, and the costly mask is not computed over free text)."""
    from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, SequenceParser, StringParser, UnionParser

    config = CharacterLevelParserConfig(max_consecutive_whitespaces=1, force_json_field_order=True)
    call = SequenceParser([StringParser(CALL_OPEN), JsonSchemaParser(call_schema(tools), config=config),
                           StringParser(CALL_CLOSE)])
    if require_call:
        return call
    return UnionParser([call, StringParser(ANSWER)])


def constrained_select(engine, prompt_ids: list[int], tools, require_call: bool = False):
    """A ``select(logits, index)`` for :meth:`Engine.steps` that picks greedily among grammar-allowed tokens.

    Returns:
        ``(select, generated)``: the callback and the list it appends each chosen token to.
    """
    import torch
    from lmformatenforcer import TokenEnforcer

    eos = engine.eos_token_ids()
    enforcer = TokenEnforcer(tokenizer_data(engine.tokenizer, eos), step_parser(tools, require_call))
    generated: list[int] = []

    def select(logits, index):
        if engine.tokenizer.decode(generated, skip_special_tokens=True).startswith(ANSWER):
            token = int(logits.argmax())  # the answer's words are free; the step ends at its newline
        else:
            allowed = enforcer.get_allowed_tokens(list(prompt_ids) + generated)
            allowed = [a for a in getattr(allowed, "allowed_tokens", allowed) if a < logits.shape[-1]]
            if not allowed:
                token = min(eos)
            else:
                mask = torch.full_like(logits, float("-inf"))
                mask[torch.as_tensor(allowed, dtype=torch.long)] = 0.0
                token = int((logits + mask).argmax())
        generated.append(token)
        return token

    return select, generated
