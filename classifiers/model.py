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

from . import tokenize as T

LABELS: tuple[str, ...] = ("城乡建设", "劳动和社会保障", "教育文体", "商贸旅游", "环境保护", "卫生计生", "交通运输")

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(PACKAGE_DIR)
KEYWORDS_PATH = os.path.join(PACKAGE_DIR, "data", "keywords.tsv")
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "teddy2020c"))

MAX_KEYWORDS = 8
_log = math.log
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
        # feature -> (idf, ((category index, weight), ...))
        # feature -> (idf, ((category index, weight), ...)); only non-zero weights are stored
        self._table: dict[str, tuple[float, tuple[tuple[int, float], ...]]] = {
            f: (float(idf), tuple(sorted((self._ci[lab], float(w)) for lab, w in ws.items())))
            for f, (idf, ws) in table.items()
        }
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
        e = self._table.get(feature)
        return e[0] if e else None

    # ---------------------------------------------------------------- inference
    def _features(self, text: str, subject: str | None) -> tuple[Counter, set]:
        cut = self._tk.cut
        content = T.content_tokens(cut(text)) if text else []
        joined = "".join(content)
        feats = Counter(content)
        feats.update(map(str.__add__, joined, joined[1:]))
        if subject:
            sc = T.content_tokens(cut(subject))
            sj = "".join(sc)
            sf = Counter(sc)
            sf.update(map(str.__add__, sj, sj[1:]))
            k = self.subject_weight
            for f, n in sf.items():
                feats[f] += n * k
            return feats, set(content).union(sc)
        return feats, set(content)

    def classify(self, text: str, subject: str | None = None) -> Decision:
        """Classify a message.  ``subject`` (optional) is a title whose words count
        ``subject_weight`` times, as in training."""
        text = text or ""
        feats, words = self._features(text, subject)
        labels = self.labels
        sc = [0.0] * len(labels)
        norm2 = 0.0
        matched = []
        get = self._table.get
        logf = _LOGF
        for f, n in feats.items():
            e = get(f)
            if e is None:
                continue
            x = e[0] if n == 1 else e[0] * (logf[n] if n < _LOGF_N else 1.0 + _log(n))
            norm2 += x * x
            matched.append((f, x, e[1]))
            for ci, w in e[1]:
                sc[ci] += w * x
        inv = 1.0 / math.sqrt(norm2) if norm2 > 0.0 else 0.0
        scores = [b + s * inv for b, s in zip(self._bias, sc)]
        fired = []
        rules = self._rules
        if rules:
            hay = text if not subject else subject + "\n" + text
            for r in rules:
                if r.keyword in hay:
                    scores[self._ci[r.category]] += r.weight
                    fired.append(r)
        if not matched and not fired:
            return Decision(None, 0.0, [], dict(zip(labels, scores)))
        m = max(scores)
        best = scores.index(m)
        t = self.temperature
        conf = 1.0 / sum([_exp((s - m) / t) for s in scores])
        # explanation: the matched words pushing the winner hardest (character bigrams that are
        # not words of the message are left out of the explanation unless nothing else matched)
        contrib, extra = [], []
        for f, x, ws in matched:
            for ci, w in ws:
                if ci == best:
                    if w > 0.0:
                        (contrib if f in words else extra).append((w * x, f))
                    break
        kws = [(f, c * inv) for c, f in nlargest(MAX_KEYWORDS, contrib or extra)]
        if fired:
            cat = labels[best]
            kws.extend((r.keyword, r.weight) for r in fired if r.category == cat and r.weight > 0)
            kws.sort(key=lambda kv: -kv[1])
            del kws[MAX_KEYWORDS:]
        return Decision(labels[best], conf, kws, dict(zip(labels, scores)))


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
