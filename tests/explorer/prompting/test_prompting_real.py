"""The prompting lens on the real embedded models, against transformers' own generate and forward."""
import numpy as np
import pytest
import torch

from explorer import prompting
from explorer.core.progress import run_to_end
from explorer.prompting import benchmark, lens, patterns, tasks


@pytest.mark.parametrize("fixture, chat", [("smollm2", True), ("gemma", False)])
def test_zero_shot_answers_equal_transformers_generate(request, fixture, chat):
    engine = request.getfixturevalue(fixture)
    result = prompting.run("capitals", engine.name, "zero_shot", limit=2, chat_template=chat, engine=engine)
    assert result.chat_template is chat
    for item, scored in zip(tasks.items("capitals")[:2], result.items):
        ids, _ = lens.prompt_ids(engine, "capitals", item, "zero_shot", [], chat)
        with torch.no_grad():
            out = engine.model.generate(torch.tensor([ids]), max_new_tokens=lens.DIRECT_TOKENS, do_sample=False,
                                        attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        text = engine.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip().split("\n")[0]
        assert text.startswith(scored.output) and scored.output
        assert scored.correct == patterns.is_correct("capitals", patterns.extract("capitals", text, False),
                                                     item.answer)


def test_benchmark_logliks_equal_a_plain_forward_on_smollm2(smollm2):
    item = tasks.items("capitals")[0]
    result = run_to_end(benchmark.iter_run("capitals", limit=1, chat_template=False, engine=smollm2))
    context = smollm2.encode(f"Question: {item.question}\nAnswer:")
    want = []
    for option in item.options:
        whole = smollm2.encode(f"Question: {item.question}\nAnswer: {option}")
        with torch.no_grad():
            logp = torch.log_softmax(smollm2.model(input_ids=torch.tensor([whole])).logits[0].float(), -1)
        want.append(sum(float(logp[p - 1, whole[p]]) for p in range(len(context), len(whole))))
    np.testing.assert_allclose(result.items[0].logliks, want, rtol=1e-4, atol=2e-4)
    assert result.items[0].pick == item.label  # the first capitals item is easy for the 135M model
