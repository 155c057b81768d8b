"""The keyword classifier: text -> Decision (category, calibrated confidence, deciding keywords).

Inference = tokenise once with the private jieba tokenizer, then dictionary lookups and a sum of
the weights of the matched keywords (a linear model stored as a readable table, see
``data/keywords.tsv``).  No ML framework at runtime.
"""
from __future__ import annotations

import json
import math
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from heapq import nlargest
from itertools import compress
from operator import mul

from . import tokenize as T

LABELS: tuple[str, ...] = ("城乡建设", "劳动和社会保障", "教育文体", "商贸旅游", "环境保护", "卫生计生", "交通运输")

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(PACKAGE_DIR)
KEYWORDS_PATH = os.path.join(PACKAGE_DIR, "data", "keywords.tsv")
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "teddy2020c"))

MAX_KEYWORDS = 8
_log = math.log
_add = str.__add__
_exp = math.exp


@dataclass(slots=True)
class Decision:
    category: str | None
    confidence: float
    keywords: list[tuple[str, float]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "confidence": round(float(self.confidence), 4),
            "keywords": [[k, round(float(w), 4)] for k, w in self.keywords],
            "scores": {k: round(float(v), 4) for k, v in self.scores.items()},
        }


@dataclass(frozen=True, slots=True)
class Rule:
    keyword: str
    category: str
    weight: float


def _norm_rules(rules) -> tuple[Rule, ...]:
    out = []
    for r in rules or ():
        if isinstance(r, Rule):
            kw, cat, w = r.keyword, r.category, r.weight
        elif isinstance(r, dict):
            kw, cat, w = r.get("keyword"), r.get("category"), r.get("weight", 1.0)
        else:
            kw, cat, w = r
        kw = (kw or "").strip()
        if not kw:
            raise ValueError("rule keyword must be a non-empty string")
        if cat not in LABELS:
            raise ValueError(f"unknown category {cat!r}; expected one of {', '.join(LABELS)}")
        w = float(w)
        if not math.isfinite(w):
            raise ValueError(f"rule weight must be finite: {w!r}")
        out.append(Rule(kw, cat, w))
    return tuple(out)


class Classifier:
    """Linear keyword model.  Thread-safe: the model is read-only after load; the runtime rule
    overlay is an immutable tuple swapped atomically by :meth:`set_rules`."""

    def __init__(self, table: dict, bias: dict[str, float], meta: dict):
        self.labels: tuple[str, ...] = tuple(meta.get("labels") or LABELS)
        self._ci = {lab: i for i, lab in enumerate(self.labels)}
        nlab = len(self.labels)
        # feature -> dense row (idf*w_0, ..., idf*w_{L-1}, idf): one dict lookup per feature at
        # inference, then column sums in C (see classify)
        rows: dict[str, tuple[float, ...]] = {}
        ci = self._ci
        for f, (idf, ws) in table.items():
            idf = float(idf)
            row = [0.0] * (nlab + 1)
            for lab, w in ws.items():
                row[ci[lab]] = float(w) * idf
            row[nlab] = idf
            rows[f] = tuple(row)
        # colloquial synonyms (data/colloquial.tsv): a colloquial term without a row of its own
        # reads as its standard term -- same row, so the table's readable meaning carries over
        self.aliases: dict[str, str] = {}
        for term, std in T.colloquial().items():
            if term not in rows and std in rows:
                rows[term] = rows[std]
                self.aliases[term] = std
        self._rows = rows
        self._bias = [float(bias.get(lab, 0.0)) for lab in self.labels]
        self.temperature = float(meta.get("temperature") or 1.0)
        self.subject_weight = int(meta.get("subject_weight") or 1)
        self.meta = meta
        self._rules: tuple[Rule, ...] = ()
        self._rules_lock = threading.Lock()
        self._tk = T.get_tokenizer()

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_parts(cls, table, bias, meta) -> "Classifier":
        return cls(table, bias, meta)

    @classmethod
    def load(cls, path: str = KEYWORDS_PATH) -> "Classifier":
        meta: dict = {}
        table: dict[str, tuple[float, dict[str, float]]] = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#"):
                    if line.startswith("#meta "):
                        meta = json.loads(line[6:])
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 4 or parts[0] == "keyword":
                    continue
                kw, lab, w, idf = parts
                entry = table.get(kw)
                if entry is None:
                    entry = table[kw] = (float(idf), {})
                if lab != "-":
                    entry[1][lab] = float(w)
        return cls(table, meta.get("bias", {}), meta)

    # ---------------------------------------------------------------- rules
    def set_rules(self, rules) -> None:
        """Replace the runtime keyword-rule overlay: iterable of {"keyword", "category", "weight"}
        (or Rule / (keyword, category, weight)).  A rule adds ``weight`` to its category's score
        when ``keyword`` occurs in the message (negative weights suppress).  Takes effect at once."""
        new = _norm_rules(rules)
        with self._rules_lock:
            self._rules = new

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def idf(self, feature: str) -> float | None:
        e = self._rows.get(feature)
        return e[-1] if e else None

    def weights(self, feature: str) -> dict[str, float]:
        """The model weights of one keyword (category -> weight; empty when unknown)."""
        e = self._rows.get(feature)
        if not e:
            return {}
        idf = e[-1]
        return {lab: e[i] / idf for i, lab in enumerate(self.labels) if e[i]}

    # ---------------------------------------------------------------- inference
    def _features(self, text: str, subject: str | None) -> tuple[Counter, list[str]]:
        """(feature counts, jieba tokens): the features of :func:`tokenize.features`, the subject's
        counted ``subject_weight`` times (inlined here to tokenise each part once)."""
        cut = T.cut
        feats = Counter(map(_add, text, text[1:]))
        toks = cut(text) if text else []
        feats.update(toks)
        if subject:
            stoks = cut(subject)
            sf = Counter(map(_add, subject, subject[1:]))
            sf.update(stoks)
            k = self.subject_weight
            for f, n in sf.items():
                feats[f] += n * k
            toks = toks + stoks
        return feats, toks

    def classify(self, text: str, subject: str | None = None) -> Decision:
        """Classify a message.  ``subject`` (optional) is a title whose words count
        ``subject_weight`` times, as in training."""
        text = text or ""
        feats, toks = self._features(text, subject)
        labels = self.labels
        nlab = len(labels)
        # score_c = bias_c + sum_f w_fc * x_f / ||x||,  x_f = idf_f * (1 + ln tf_f)
        rows = list(map(self._rows.get, feats))
        hits = list(compress(rows, rows))          # rows of the features in the table
        if hits:
            tfs = list(compress(feats.values(), rows))
            cols = list(zip(*hits))                 # column c = idf*w_c of each hit; last = idf
            if max(tfs) == 1:                       # common for short texts: all tf = 1
                lfs = None
                norm2 = sum(map(mul, cols[nlab], cols[nlab]))
                sc = list(map(sum, cols[:nlab]))
            else:
                try:
                    lfs = list(map(_LOGF.__getitem__, tfs))
                except IndexError:
                    lfs = [1.0 + _log(n) for n in tfs]
                xs = list(map(mul, cols[nlab], lfs))
                norm2 = sum(map(mul, xs, xs))
                sc = [sum(map(mul, col, lfs)) for col in cols[:nlab]]
            inv = 1.0 / math.sqrt(norm2) if norm2 > 0.0 else 0.0
            scores = [b + s * inv for b, s in zip(self._bias, sc)]
        else:
            scores = list(self._bias)
        fired = []
        rules = self._rules
        if rules:
            hay = text if not subject else subject + "\n" + text
            ci = self._ci
            for r in rules:
                if r.keyword in hay:
                    scores[ci[r.category]] += r.weight
                    fired.append(r)
        if not hits and not fired:
            return Decision(None, 0.0, [], dict(zip(labels, scores)))
        m = max(scores)
        best = scores.index(m)
        t = self.temperature
        conf = 1.0 / sum([_exp((s - m) / t) for s in scores])
        kws = self._explain(feats, rows, toks, cols[best], lfs, inv) if hits else []
        if fired:
            cat = labels[best]
            kws.extend((r.keyword, r.weight) for r in fired if r.category == cat and r.weight > 0)
            kws.sort(key=lambda kv: -kv[1])
            del kws[MAX_KEYWORDS:]
        return Decision(labels[best], conf, kws, dict(zip(labels, scores)))

    def _explain(self, feats, rows, toks, col, lfs, inv) -> list[tuple[str, float]]:
        """The matched keywords pushing the winning category hardest, from the contributions
        already summed (top-k, no second pass over the message).  Character bigrams that are not
        also words of the message are left out unless nothing else matched."""
        contrib = col if lfs is None else list(map(mul, col, lfs))
        names = list(compress(feats, rows))
        top = nlargest(2 * MAX_KEYWORDS, range(len(contrib)), key=contrib.__getitem__)
        top = [i for i in top if contrib[i] > 0.0]
        if not top:
            return []
        words = set(toks)
        chosen = [i for i in top if names[i] in words] or top
        return [(names[i], contrib[i] * inv) for i in chosen[:MAX_KEYWORDS]]


_LOGF_N = 4096
_LOGF = [0.0] + [1.0 + math.log(n) for n in range(1, _LOGF_N)]


_singleton: Classifier | None = None
_singleton_lock = threading.Lock()


def get_classifier() -> Classifier:
    """Process-wide classifier, loaded once (thread-safe lazy init).  The model file can be
    overridden with the environment variable ``CLASSIFIER_KEYWORDS``."""
    global _singleton
    clf = _singleton
    if clf is None:
        with _singleton_lock:
            clf = _singleton
            if clf is None:
                clf = _singleton = Classifier.load(os.environ.get("CLASSIFIER_KEYWORDS") or KEYWORDS_PATH)
    return clf
