"""Tokenising: a private jieba.Tokenizer with a civic user dictionary and stop words.

The tokenizer is created once per process (thread-safe lazy init) from jieba's cached
prefix dictionary, then the domain words of ``data/userdict.txt`` are added to the
private instance only, so the global ``jieba`` (``jieba.lcut``) is left untouched.

Feature extraction (shared by training and inference, so both see identical features):
content tokens = jieba tokens (HMM=True, like ``jieba.lcut``) minus stop words,
punctuation, whitespace and pseudonymised place codes; features = content unigrams
plus bigrams of adjacent content tokens, written ``"a_b"``.
"""
from __future__ import annotations

import os
import re
import threading
from collections import Counter
from itertools import compress
from operator import not_

import jieba

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
USERDICT_PATH = os.path.join(DATA_DIR, "userdict.txt")
STOPWORDS_PATH = os.path.join(DATA_DIR, "stopwords.txt")

BIGRAM_SEP = "_"

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None
_stop: frozenset[str] | None = None
_user_words: tuple[str, ...] = ()

# Tokens that never carry meaning: punctuation, whitespace, digits-only codes such as
# "A3" / "A市" place pseudonyms, single ASCII letters.  ("12345" is kept: hotline.)
_JUNK_RE = re.compile(
    r"^(?:[\W_]+|[A-Za-z]{1,2}\d{0,3}|\d{1,4}(?:\.\d+)?|[A-Za-z]\d+[A-Za-z]?\d*|\d+[年月日号点时分]?)$"
)
_KEEP = frozenset({"12345"})


def _read_lines(path: str) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def user_words() -> tuple[str, ...]:
    get_tokenizer()
    return _user_words


def _build_stop() -> frozenset[str]:
    words = set(_read_lines(STOPWORDS_PATH))
    return frozenset(words)


def get_tokenizer() -> jieba.Tokenizer:
    """The process-wide private jieba tokenizer (created on first use)."""
    global _tokenizer, _stop, _user_words
    tk = _tokenizer
    if tk is not None:
        return tk
    with _lock:
        if _tokenizer is not None:
            return _tokenizer
        tk = jieba.Tokenizer()  # default dictionary -> loads jieba's marshal cache when present
        tk.initialize()
        words = []
        for line in _read_lines(USERDICT_PATH):
            parts = line.split()
            word = parts[0]
            freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            # freq None -> jieba's suggest_freq: the smallest frequency that keeps the word whole
            tk.add_word(word, freq)
            words.append(word)
        _user_words = tuple(words)
        _stop = _build_stop()
        _tokenizer = tk
        return tk


def stop_words() -> frozenset[str]:
    get_tokenizer()
    assert _stop is not None
    return _stop


def is_junk(tok: str, stop: frozenset[str]) -> bool:
    """True for tokens that are never features (used at training time to build the vocabulary)."""
    if tok in stop:
        return True
    if tok in _KEEP:
        return False
    return bool(_JUNK_RE.match(tok))


def tokens(text: str) -> list[str]:
    """All jieba tokens of ``text`` (HMM=True, like jieba.lcut) from the private tokenizer."""
    return get_tokenizer().lcut(text or "")


_junk_memo: dict[str, bool] = {}
_JUNK_MEMO_MAX = 200_000


def content_tokens(toks) -> list[str]:
    """Drop stop words, punctuation, whitespace and place codes from a token sequence."""
    toks = toks if isinstance(toks, list) else list(toks)
    memo = _junk_memo
    flags = list(map(memo.get, toks))
    if None in flags:
        stop = _stop if _stop is not None else stop_words()
        if len(memo) >= _JUNK_MEMO_MAX:
            memo.clear()
        for i, t in enumerate(toks):
            if flags[i] is None:
                flags[i] = memo[t] = is_junk(t, stop)
    return list(compress(toks, map(not_, flags)))


def add_features(counts: dict, content: list[str], times: int = 1) -> dict:
    """Add the features of a content-token list to ``counts``: each content word, plus every
    character bigram of the joined content (words and char bigrams share one namespace, so a
    two-character word is counted once as a word and once as a bigram)."""
    joined = "".join(content)
    feats = Counter(content)
    feats.update(map(str.__add__, joined, joined[1:]))
    if times == 1:
        for f, n in feats.items():
            counts[f] = counts.get(f, 0) + n
    else:
        for f, n in feats.items():
            counts[f] = counts.get(f, 0) + n * times
    return counts


def feature_counts(text: str, subject: str | None = None, subject_weight: int = 1) -> dict[str, int]:
    """Feature -> count for a message (``subject`` counted ``subject_weight`` times)."""
    counts: dict[str, int] = {}
    tk = get_tokenizer()
    if subject:
        add_features(counts, content_tokens(tk.cut(subject)), subject_weight)
    if text:
        add_features(counts, content_tokens(tk.cut(text)))
    return counts
