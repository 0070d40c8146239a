"""Tokens lens: how text becomes token ids under several tokenizers.

Where a change goes:
- tokenize.py: ``iter_run`` / ``run``, the result types (token spans, byte groups) and ``to_api`` (the
  ``/tokenize`` JSON); a change to what a token shows or to the JSON goes here.
- backends.py: one class per tokenizer family and ``OFFLINE_TOKENIZERS``; adding a tokenizer is one entry
  in ``_build`` (and the list) there.
"""
from explorer.tokens.backends import OFFLINE_TOKENIZERS, get_backend
from explorer.tokens.tokenize import (ChatTemplateResult, Token, TokenizationResult, TokenizerResult, chat_template,
                                      iter_run, run, to_api, tokenize_one, validate_text)

__all__ = ["OFFLINE_TOKENIZERS", "get_backend", "ChatTemplateResult", "Token", "TokenizationResult",
           "TokenizerResult", "chat_template", "iter_run", "run", "to_api", "tokenize_one", "validate_text"]
