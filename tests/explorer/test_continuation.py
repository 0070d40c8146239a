"""A greedy generation split into chunks (state = ids so far) gives the same tokens as one call."""
from explorer.core.continuation import generate_in_chunks


def test_chunked_generation_matches_one_call(tiny_engine):
    ids = tiny_engine.tokenizer("The capital of France is")["input_ids"]
    import torch

    whole = [s.token for s in tiny_engine.steps(torch.tensor(ids), 12, stop_at_eos=False)]
    eos = tiny_engine.eos_token_ids()
    if any(t in eos for t in whole):
        whole = whole[:next(i for i, t in enumerate(whole) if t in eos) + 1]
    calls = []
    chunked = generate_in_chunks("tiny", ids, [5, 4, 3], wrap=lambda fn, n: (calls.append(n), fn)[1],
                                 engine=tiny_engine)
    assert chunked == whole and calls[0] == 5
