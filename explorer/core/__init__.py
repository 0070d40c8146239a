"""The engine every lens runs on: the shared :class:`Engine` (one lock per loaded model), the limits and
the cache folder. The one door to the model: nothing outside this package takes the model's lock, registers a
hook, swaps a module or switches the attention implementation.

Where a change goes: engine.py: Engine, get_engine, Engine.turn (the one way to hold the model), Engine.forward (one
locked pass), Engine.steps / batch_steps (prefill then one decode pass per generated token) and
greedy_continuation; patches.py: per-pass patches (hooks, module swaps, attention implementation, adapters),
installed inside a locked pass and removed in ``finally``; readout.py: ``unembed``, the one logit lens; runs.py:
the registry of background runs (start, stop, idle stop, re-attach, ownership); copies.py: weight-sharing shadows; shadow.py + intervene.py: nnsight traces on a hookless shadow, one pass per turn (the Circuits lens);
steps.py: the records a pass yields; turns.py: the fair turn lock; config.py: Limits (every cap, env overrides);
validation.py: the shared argument checks and their wording; progress.py: Progress, run_to_end and ``to_api``
(the lens contract); provenance.py: where a result's numbers come from.
"""
