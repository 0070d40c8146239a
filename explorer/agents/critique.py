"""Constitutional self-critique (Bai et al. 2022, "Constitutional AI: Harmlessness from AI Feedback"), reduced to
what a small model can show: the model answers, critiques its answer against one principle of a short written
constitution, and revises; a stated judge picks which of (revision, original) follows the principle better, and
the pair becomes a DPO preference row ``{"prompt", "chosen", "rejected"}`` that the Fine-tuning tab's DPO upload
reads (:func:`explorer.lora.dpo_data.parse_preference_jsonl`): RLAIF end to end.

The judge is a rule per principle (word count for "concise", long-word share for "plain_words", exclamation marks
and shouted words for "calm"), so its verdict can be checked by hand; beside it the model's own self-judgement,
P(Yes) = p(" Yes") / (p(" Yes") + p(" No")) for the next token after "Does this answer follow the principle? ...",
is shown but does not decide.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from explorer.core.config import get_limits
from explorer.core.provenance import Provenance, measured
from explorer.core.validation import check_text
from explorer.prompting import generate as gen
from explorer.prompting.lens import resolve_form

CONSTITUTION = {
    "concise": "Be concise: answer in as few words as the question needs.",
    "plain_words": "Use plain words: prefer short, everyday words over long technical ones.",
    "calm": "Stay calm: no exclamation marks and no shouting in capital letters.",
}
RULES = {
    "concise": "fewer words wins",
    "plain_words": "lower share of words with 9 or more letters wins",
    "calm": "fewer exclamation marks plus all-capital words (2+ letters) wins",
}


def check_principle(principle) -> str:
    """``principle`` if it is in :data:`CONSTITUTION`. Raises: ValueError naming ``principle``."""
    if principle not in CONSTITUTION:
        raise ValueError(f"principle must be one of {list(CONSTITUTION)} (got {principle!r}).")
    return principle


def rule_score(principle: str, text: str) -> float:
    """The judge's score of ``text`` under ``principle`` (lower follows it better); see :data:`RULES`."""
    words = re.findall(r"[A-Za-z0-9']+", text)
    if principle == "concise":
        return float(len(words))
    if principle == "plain_words":
        return sum(len(w) >= 9 for w in words) / max(len(words), 1)
    return float(text.count("!") + sum(len(w) >= 2 and w.isupper() and w.isalpha() for w in words))


def _ids(engine, user: str, chat: bool) -> list[int]:
    return engine.chat_ids(user) if chat else engine.encode(f"{user}\n")


def _say(engine, user: str, chat: bool) -> str:
    ids = _ids(engine, user, chat)
    stop = gen.STOP_EOS if chat else gen.STOP_BLOCK
    return gen.continue_text(engine, ids, get_limits().critique_tokens, stop).text.strip()


def p_yes(engine, principle: str, question: str, answer: str, chat: bool) -> float:
    """The model's self-judgement: P(" Yes") renormalised over {" Yes", " No"} for the next token after the
    question "Does this answer follow the principle?" (one pass through ``Engine.steps``)."""
    import torch

    user = (f"Principle: {CONSTITUTION[principle]}\nQuestion: {question}\nAnswer: {answer}\n"
            "Does this answer follow the principle? Reply Yes or No.")
    ids = _ids(engine, user, chat) if chat else engine.encode(user + "\nReply:")
    step = next(iter(engine.steps(ids, 1)))
    logp = torch.log_softmax(step.logits.float(), -1)

    def best(word):
        ids_ = {engine.tokenizer.encode(w, add_special_tokens=False)[0] for w in (word, " " + word)}
        return max(float(logp[i]) for i in ids_)

    yes, no = best("Yes"), best("No")
    return float(torch.sigmoid(torch.tensor(yes - no)))


@dataclass(frozen=True)
class CritiqueResult:
    """One answer -> critique -> revision -> judge round.

    Attributes:
        preferred: "revision" or "original" (the rule's pick; a tie keeps the original). judge: the rule, both
        scores and the model's P(Yes) for each. pair: the DPO row, None when both texts are the same.
    """

    question: str
    model: str
    principle: str
    chat_template: bool
    answer: str
    critique: str
    revision: str
    preferred: str
    judge: dict
    pair: dict | None
    notices: tuple = ()
    provenance: Provenance = field(default_factory=lambda: measured("constitutional self-critique"))

    def to_api(self) -> dict:
        """``/critique`` JSON: ``{"answer", "critique", "revision", "preferred", "judge"}`` plus the DPO pair."""
        return {"answer": self.answer, "critique": self.critique, "revision": self.revision,
                "preferred": self.preferred, "judge": self.judge, "pair": self.pair, "question": self.question,
                "model": self.model, "principle": self.principle, "chat_template": self.chat_template,
                "notices": list(self.notices), "provenance": self.provenance.to_api()}


def critique(question: str, model: str | None = None, principle: str = "concise", chat_template: bool | None = None,
             engine=None) -> CritiqueResult:
    """Answer ``question``, critique the answer against ``principle``, revise, and judge (greedy throughout).

    Raises:
        ValueError: empty question, unknown principle, a prompt over the token caps.
    """
    from explorer.core.engine import get_engine

    question = check_text(question, "question").strip()
    principle = check_principle(principle)
    engine = engine or get_engine(model or None)
    chat, notices = resolve_form(engine, chat_template)
    rule = CONSTITUTION[principle]
    answer = _say(engine, question if chat else f"Question: {question}\nAnswer:", chat)
    critique_text = _say(engine, f"Principle: {rule}\nQuestion: {question}\nAnswer: {answer}\n"
                                 "Critique the answer: how does it break the principle?" +
                         ("" if chat else "\nCritique:"), chat)
    revision = _say(engine, f"Principle: {rule}\nQuestion: {question}\nAnswer: {answer}\nCritique: {critique_text}\n"
                            "Rewrite the answer so that it follows the principle. Give only the new answer." +
                    ("" if chat else "\nNew answer:"), chat)
    scores = {"original": rule_score(principle, answer), "revision": rule_score(principle, revision)}
    preferred = "revision" if scores["revision"] < scores["original"] and revision.strip() else "original"
    judge = {"rule": RULES[principle], "principle": rule, "scores": scores,
             "self_p_yes": {"original": p_yes(engine, principle, question, answer, chat),
                            "revision": p_yes(engine, principle, question, revision, chat)}}
    pair = None
    if answer.strip() and revision.strip() and answer.strip() != revision.strip():
        chosen, rejected = (revision, answer) if preferred == "revision" else (answer, revision)
        pair = {"prompt": question, "chosen": chosen, "rejected": rejected}
    else:
        notices.append("The answer and its revision are the same (or one is empty): no preference pair.")
    return CritiqueResult(question, engine.name, principle, chat, answer, critique_text, revision, preferred, judge,
                          pair, tuple(notices), measured(f"answer, critique, revision greedy over Engine.steps; "
                                                         f"judge: {RULES[principle]}", engine.name))


def pairs_jsonl(pairs) -> str:
    """DPO JSONL: one ``{"prompt", "chosen", "rejected"}`` object per line (the Fine-tuning tab's upload format)."""
    return "".join(json.dumps({k: p[k] for k in ("prompt", "chosen", "rejected")}, ensure_ascii=False) + "\n"
                   for p in pairs if p)
