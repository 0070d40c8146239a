"""Prompting lens mechanics: task files, prompts, answer reading, the vote, intervals, bad input (tiny model)."""
import numpy as np
import pytest

from explorer.prompting import lens, patterns, tasks
from explorer.prompting.stats import accuracy_interval


def test_task_file_is_what_the_generator_writes():
    from explorer.core.config import data_path

    with open(data_path(*tasks.TASKS_FILE), encoding="utf-8") as handle:
        assert handle.read() == tasks.tasks_text()


@pytest.mark.parametrize("task", tasks.TASKS)
def test_every_task_has_a_held_out_split_of_50_plus_items_with_four_options(task):
    test, dev = tasks.items(task, "test"), tasks.items(task, "dev")
    assert len(test) >= 50 and len(dev) >= 8
    assert not {i.question for i in test} & {i.question for i in dev}
    for item in test + dev:
        assert len(set(item.options)) == 4 and item.options[item.label] == item.answer


def test_arithmetic_and_unit_answers_are_right():
    for item in tasks.items("arithmetic"):
        expr = item.question.removeprefix("What is ").rstrip("?")
        assert str(eval(expr)) == item.answer  # noqa: S307 - our own generated "a + b - c"
    for item in tasks.items("units"):
        words = item.question.split()
        dst, amount, src = words[2], int(words[5]), words[6].rstrip("?")
        factor = next(f for s, d, f in tasks.UNITS if s == src and d == dst)
        assert int(item.answer) == amount * factor


@pytest.mark.parametrize("k", [1, 3, 8])
def test_few_shot_prompts_never_hold_the_scored_item(k):
    shots = tasks.items("capitals", "dev")[:k]
    for item in tasks.items("capitals"):
        text = patterns.text_prompt("capitals", item, "few_shot", shots)
        assert text.count(item.question) == 1 and text.endswith(f"Question: {item.question}\nAnswer:")
        assert text.count("Question:") == k + 1
        turns = patterns.chat_messages("capitals", item, "few_shot", shots)
        assert len(turns) == 2 * k + 1 and sum(item.question in t["content"] for t in turns) == 1


@pytest.mark.parametrize("task, output, reasoning, expected", [
    ("arithmetic", "42", False, "42"),
    ("arithmetic", " 1,000 and more", False, "1000"),
    ("arithmetic", "First 12 + 5 = 17, then 17 - 3 = 14. The answer is 14.", True, "14"),
    ("arithmetic", "12 + 5 = 17\n17 - 3 = 14", True, "14"),
    ("sentiment", "Positive.", False, "positive"),
    ("sentiment", "It says bad things, so negative rather than positive. Answer: negative", True, "negative"),
    ("capitals", "The capital of Colombia is Bogota.", False, "Bogotá"),
    ("capitals", "I am not sure", False, "I am not sure"),
    ("units", "no idea", False, None),
])
def test_answers_are_read_back(task, output, reasoning, expected):
    assert patterns.extract(task, output, reasoning) == expected


def test_correctness_ignores_case_and_accents():
    assert patterns.is_correct("capitals", "bogota", "Bogotá") and not patterns.is_correct("capitals", None, "Lima")


def test_self_consistency_vote_on_fixed_samples():
    assert patterns.majority_vote(["14", "12", "14", None, "12", "14"]) == ("14", {"14": 3, "12": 2})
    assert patterns.majority_vote(["12", "14", "14", "12"])[0] == "12"  # a tie goes to the first seen
    assert patterns.majority_vote([None, None]) == (None, {})


def test_accuracy_interval_brackets_the_mean_and_is_exact_for_constant_items():
    acc, low, high = accuracy_interval([1, 0, 1, 1, 0, 1, 1, 1] * 4)
    assert acc == 0.75 and low < acc < high and 0.5 < low and high < 0.95
    assert accuracy_interval([1, 1, 1]) == (1.0, 1.0, 1.0)
    assert np.isnan(accuracy_interval([])[0])


@pytest.mark.parametrize("kwargs, message", [
    ({"task": "poetry"}, "task must be one of"),
    ({"pattern": "mind_reading"}, "pattern must be one of"),
    ({"pattern": "tree_of_thoughts", "task": "capitals"}, "arithmetic task only"),
    ({"pattern": "few_shot", "k": 99}, "k must be between 0 and"),
    ({"pattern": "self_consistency", "n_samples": 99}, "n_samples must be between 1 and"),
    ({"limit": 500}, "more items than the capitals task's test split holds"),
    ({"limit": 0}, "limit must be at least 1"),
    ({"k": "two"}, "k must be a whole number"),
])
def test_bad_settings_name_their_argument(kwargs, message):
    args = {"task": "capitals", "pattern": "zero_shot", "k": 0, "n_samples": 1, "limit": None} | kwargs
    with pytest.raises(ValueError, match=message):
        lens.check_settings(args["task"], args["pattern"], args["k"], args["n_samples"], args["limit"])


def test_defaults_are_said_in_notices():
    *_, k, n, items, notices = lens.check_settings("capitals", "few_shot", 0, 1, None)
    assert k == lens.DEFAULT_SHOTS and items == 12 and any("k=3" in m for m in notices)
    assert any("capped sample" in m for m in notices)
    _, _, _, n, _, notices = lens.check_settings("arithmetic", "self_consistency", 0, 1, 4)
    assert n == lens.DEFAULT_SAMPLES and any("N=5" in m for m in notices)


def test_a_run_on_the_tiny_model_scores_what_it_generated(tiny_engine):
    from explorer import prompting

    result = prompting.run("units", pattern="zero_shot", limit=3, chat_template=False, engine=tiny_engine)
    assert len(result.items) == 3 and result.tokens == sum(i.tokens for i in result.items)
    for item in result.items:
        assert item.correct == patterns.is_correct("units", patterns.extract("units", item.output, False), item.answer)
        assert item.prompt.startswith("Question: How many")
    api = prompting.to_api(result)
    assert set(api) >= {"accuracy", "interval", "items", "tokens", "notices"}
    assert set(api["items"][0]) >= {"prompt", "output", "answer", "correct"}


def test_self_consistency_samples_reproduce_with_their_seed_and_leave_the_global_rng(tiny_engine):
    import torch

    from explorer import prompting

    state = torch.random.get_rng_state()
    runs = [prompting.run("arithmetic", pattern="self_consistency", n_samples=3, limit=2, seed=5,
                          chat_template=False, engine=tiny_engine) for _ in range(2)]
    assert [i.samples for i in runs[0].items] == [i.samples for i in runs[1].items]
    assert all(len(i.samples) == 3 for i in runs[0].items)
    assert torch.equal(state, torch.random.get_rng_state())


def test_tree_of_thoughts_explores_two_branches_per_node(tiny_engine):
    from explorer.prompting import generate

    ids = tiny_engine.encode("Question: What is 12 + 5?\nAnswer: Let's think step by step.")
    best, explored, spent = generate.tree_of_thoughts(tiny_engine, ids, breadth=2, depth=2, line_tokens=4)
    assert 2 <= len(explored) <= 2 + 4 and spent > len(ids)
    assert any(t is best for t in explored) and all(len(t.ids) > 0 for t in explored)
