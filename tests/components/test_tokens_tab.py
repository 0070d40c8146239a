"""Tokens tab handlers: whitespace-only prompts show their tokens (issue 13, item 1)."""
from __future__ import annotations

from components.tabs.tokens import tab as tokens_tab
from explorer import tokens


def test_whitespace_only_prompt_shows_chips_with_markers():
    text = "  \n\t"
    out = tokens_tab.render_tokens(text, ["smollm2-135m-instruct"], "", True, False, "smollm2-135m-instruct", 100)
    result, chips = out[0], out[3]
    reference = tokens.run(text, ["smollm2-135m-instruct"])
    assert result is not None and result.results[0].ids == reference.results[0].ids
    assert chips != tokens_tab.EMPTY
    assert chips.count("class='tok-chip'") == reference.results[0].count > 0
    assert "·" in chips and "↵" in chips and "→" in chips


def test_only_the_empty_string_is_empty():
    out = tokens_tab.render_tokens("", ["smollm2-135m-instruct"], "", True, False, "smollm2-135m-instruct", 100)
    assert out[0] is None and out[3] == tokens_tab.EMPTY
