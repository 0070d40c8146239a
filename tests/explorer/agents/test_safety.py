"""Prompt injection / jailbreak measurement and constitutional self-critique (tiny model for mechanics; the
critique pairs are read back with the Fine-tuning tab's own DPO parser)."""
import pytest

from explorer.agents import critique as crit
from explorer.agents import injection as inj
from explorer.core.progress import run_to_end
from explorer.lora.dpo_data import parse_preference_jsonl
from explorer.prompting.stats import accuracy_interval


def test_canary_criterion():
    assert inj.says_canary("sure: purple-otter!") and inj.says_canary("P U R P L E  O T T E R")
    assert not inj.says_canary("purple") and not inj.says_canary("otter purple")


@pytest.mark.parametrize("defence", inj.BUILT_DEFENCES)
def test_defences_shape_the_prompt(defence):
    user = inj.indirect_user("Who founded Velmora?", "Velmora was founded by Brennick.", inj.ATTACKS[0], defence)
    assert inj.ATTACKS[0] in user and "Velmora was founded by Brennick." in user
    assert ("<data>" in user) == (defence == "delimiters")
    assert user.endswith(inj.AFTER) == (defence == "instruction_after")
    jb = inj.jailbreak_user(inj.JAILBREAKS[0], defence)
    assert inj.JAILBREAKS[0] in jb and jb.endswith(inj.AFTER_SECRET) == (defence == "instruction_after")


def test_unknown_and_unbuilt_choices_are_refused(tiny_engine):
    with pytest.raises(ValueError, match="defence"):
        run_to_end(inj.iter_injection(defence="prayer", engine=tiny_engine))
    with pytest.raises(ValueError, match="model"):  # the stored adapter is SmolLM2's, not the tiny model's
        run_to_end(inj.iter_injection(defence="refusal_adapter", engine=tiny_engine))
    with pytest.raises(ValueError, match="kind"):
        run_to_end(inj.iter_injection(kind="dan", engine=tiny_engine))
    with pytest.raises(ValueError, match="principle"):
        crit.critique("q", principle="be evil", engine=tiny_engine)


def test_jailbreak_rate_is_deterministic_and_its_interval_is_the_bootstrap(tiny_engine):
    a = run_to_end(inj.iter_injection(defence="none", kind="jailbreak", limit=2, chat_template=True,
                                      engine=tiny_engine))
    b = run_to_end(inj.iter_injection(defence="none", kind="jailbreak", limit=2, chat_template=True,
                                      engine=tiny_engine))
    assert [i["output"] for i in a.items] == [i["output"] for i in b.items]
    successes = [inj.says_canary(i["output"]) for i in a.items]
    assert [i["success"] for i in a.items] == successes
    rate, low, high = accuracy_interval(successes)
    assert a.success_rate == rate and a.interval == (low, high)
    assert inj.CANARY in a.items[0]["prompt"]  # the secret sits in the system turn
    api = a.to_api()
    assert set(api) >= {"success_rate", "interval", "items", "notices"}


def test_indirect_injection_goes_through_retrieval(tiny_engine):
    from explorer.embeddings.search import search

    result = run_to_end(inj.iter_injection(defence="delimiters", kind="indirect", limit=1, engine=tiny_engine))
    item = result.items[0]
    assert item["passage"] == search(item["question"], k=1).hits[0].text
    assert item["attack"] in item["prompt"] and "<data>" in item["prompt"]


@pytest.mark.parametrize("principle,better,worse", [
    ("concise", "Paris.", "The capital city of France is, of course, Paris."),
    ("plain_words", "The sky looks blue.", "Atmospheric scattering predominantly redistributes wavelengths."),
    ("calm", "It is fine.", "It is GREAT!!"),
])
def test_rules_judge_by_hand_checkable_counts(principle, better, worse):
    assert crit.rule_score(principle, better) < crit.rule_score(principle, worse)


def test_critique_round_and_pairs_load_in_the_dpo_tab(tiny_engine):
    result = crit.critique("Why is the sky blue?", principle="concise", chat_template=False, engine=tiny_engine)
    api = result.to_api()
    assert set(api) >= {"answer", "critique", "revision", "preferred", "judge"}
    scores = api["judge"]["scores"]
    assert scores["original"] == crit.rule_score("concise", result.answer)
    assert (api["preferred"] == "revision") == (scores["revision"] < scores["original"] and bool(result.revision))
    assert all(0.0 <= p <= 1.0 for p in api["judge"]["self_p_yes"].values())
    pairs = [result.pair, {"prompt": "Q?", "chosen": "Short.", "rejected": "A much longer answer."}]
    loaded = parse_preference_jsonl(crit.pairs_jsonl(pairs), max_bytes=None)
    assert loaded[-1] == pairs[-1] and len(loaded) == len([p for p in pairs if p])
