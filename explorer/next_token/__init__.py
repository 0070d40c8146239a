"""Next token lens: what the model is trained to do, measured: every position's prediction, cross-entropy and
perplexity, perplexity by domain, Min-K% Prob, loss by position and needle in a haystack.

Where a change goes: scoring.py: per-token log-probs, perplexity, bits per byte (``run``/``iter_run``);
domains.py: the perplexity-by-domain table and its bootstrap; min_k.py: Min-K% Prob; context.py: loss by
position; needle.py: needle in a haystack; texts.py: every built-in text; stored.py: the bench files
in data/next_token/.
"""
from explorer.next_token.scoring import ScoreResult, iter_run, run, to_api  # noqa: F401
from explorer.next_token import context, domains, min_k, needle, texts  # noqa: F401,E402
