"""Duplicate detection support (并单): keyword signatures and their similarity.

``signature(text)`` is the set of the message's most informative content words (the
``signature_size`` words with the highest tf-idf, idf taken from the keyword model; unknown words
get the largest idf).  ``similarity(a, b)`` is the idf-weighted Jaccard of two signatures:
sum(idf over a∩b) / sum(idf over a∪b), in [0, 1].  Two messages are duplicate candidates when
``similarity >= similarity_threshold()`` (``duplicate.similarity_threshold`` in routing.json).
Both functions are pure (no I/O beyond the lazily loaded, read-only model).
"""
from __future__ import annotations

from collections import Counter

from . import tokenize as T
from .model import get_classifier
from .routing import get_routing_config

_MAX_IDF = 10.0


def _idf(word: str) -> float:
    v = get_classifier().idf(word)
    return v if v is not None else _MAX_IDF


def signature(text: str, size: int | None = None) -> frozenset[str]:
    """The ``size`` (default ``signature_size``) most informative content words of ``text``."""
    global _last_signature
    size = size or get_routing_config().signature_size
    key = (text, size, get_classifier())
    last = _last_signature
    if last is not None and last[0] == key:
        return last[1]
    result = _signature(text, size)
    _last_signature = (key, result)
    return result


# The last signature made (its text, size and model, and the signature): the webhook asks for the
# same message's twice (the duplicate lookup, then the new case), and each costs a jieba segmentation.
# One shared slot, replaced whole, so a thread never sees another message's signature as its own.
_last_signature: tuple | None = None


def _signature(text: str, size: int) -> frozenset[str]:
    words = [w for w in T.content_tokens(T.tokens(text or "")) if len(w) >= 2]
    if not words:
        return frozenset()
    counts = Counter(words)
    ranked = sorted(counts, key=lambda w: (-(counts[w] ** 0.5) * _idf(w), w))
    return frozenset(ranked[:size])


def similarity(a, b) -> float:
    a, b = set(a or ()), set(b or ())
    if not a or not b:
        return 0.0
    inter = sum(_idf(w) for w in a & b)
    if inter == 0.0:
        return 0.0
    return inter / sum(_idf(w) for w in a | b)


def similarity_threshold() -> float:
    return get_routing_config().similarity_threshold
