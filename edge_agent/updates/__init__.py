"""Signed model updates: manifest + signature, fetch, on-disk store, rollout, preflight (#5).

Pure cores (:mod:`.manifest`, :mod:`.state`, :mod:`.rollout`, :mod:`.trial`) import no socket,
thread or interpreter; :mod:`.fetch`, :mod:`.store`, :mod:`.preflight` and :mod:`.component`
are the adapters around them.
"""
