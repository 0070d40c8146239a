"""The engine every lens runs on: the shared :class:`Engine` (one lock per loaded model), the limits and
the cache folder.

Where a change goes: engine.py: Engine, get_engine, Engine.forward (one locked pass) and Engine.steps (the one step primitive:
prefill then one decode pass per generated token); config.py: Limits (every cap, env overrides); validation.py: the
shared argument checks and their wording; provenance.py: where a result's numbers come from.
"""
