"""Evaluate the classifier on a labelled CSV (columns subject, text, label).

    python -m classifiers.evaluate FILE.csv [--json] [--model classifiers/data/keywords.tsv]

Lines of FILE.csv starting with ``#`` (before the header row) are comments.

Prints macro-F1, accuracy, per-class precision/recall, the confusion matrix and messages/s,
for subject+text input and for subject alone.  ``--json`` prints exactly one JSON object:
{"subject+text": {"macro_f1", "accuracy", "msgs_per_s", ...}, "subject": {...}}.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time

from .model import Classifier, get_classifier

MODES = ("subject+text", "subject")


def metrics(golds: list[str], preds: list[str | None], labels) -> dict:
    labels = list(labels)
    conf = {g: {p: 0 for p in labels + [None]} for g in labels}
    for g, p in zip(golds, preds):
        if g in conf:
            conf[g][p if p in conf[g] else None] += 1
    per = {}
    f1s = []
    for lab in labels:
        tp = conf[lab][lab]
        fp = sum(conf[g][lab] for g in labels if g != lab)
        fn = sum(conf[lab].values()) - tp
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per[lab] = {"precision": p, "recall": r, "f1": f, "support": tp + fn}
        f1s.append(f)
    n = len(golds)
    acc = sum(1 for g, p in zip(golds, preds) if g == p) / n if n else 0.0
    return {"macro_f1": sum(f1s) / len(f1s) if f1s else 0.0, "accuracy": acc, "n": n,
            "per_class": per, "confusion": {g: {str(p): c for p, c in row.items()} for g, row in conf.items()}}


def read_rows(path: str) -> list[dict]:
    """The labelled rows of a CSV (columns subject, text, label); leading lines starting with ``#``
    are a comment header (the repository's short-message sets say there how they were written)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return [r for r in csv.DictReader(lines) if (r.get("label") or "").strip()]


def evaluate_rows(clf: Classifier, rows: list[dict]) -> dict:
    out = {}
    golds = [r["label"].strip() for r in rows]
    for mode in MODES:
        t0 = time.perf_counter()
        if mode == "subject":
            ds = [clf.classify(r["subject"]) for r in rows]
        else:
            ds = [clf.classify(r["text"], subject=r["subject"]) for r in rows]
        dt = time.perf_counter() - t0
        res = metrics(golds, [d.category for d in ds], clf.labels)
        res["msgs_per_s"] = len(rows) / dt if dt > 0 else 0.0
        res["mean_confidence"] = sum(d.confidence for d in ds) / len(ds) if ds else 0.0
        out[mode] = res
    return out


def _print_report(res: dict, labels, fh=sys.stdout) -> None:
    for mode in MODES:
        r = res[mode]
        print(f"== {mode}: n={r['n']}  macro-F1={r['macro_f1']:.4f}  accuracy={r['accuracy']:.4f}  "
              f"msgs/s={r['msgs_per_s']:.0f}  mean confidence={r['mean_confidence']:.3f}", file=fh)
        print(f"{'category':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}", file=fh)
        for lab in labels:
            p = r["per_class"][lab]
            print(f"{lab:<10} {p['precision']:>9.3f} {p['recall']:>7.3f} {p['f1']:>7.3f} {p['support']:>7}", file=fh)
        print("confusion (rows = gold, columns = predicted; columns in the order above, last = none):", file=fh)
        for lab in labels:
            row = r["confusion"][lab]
            print(f"{lab:<10} " + " ".join(f"{row[str(p)]:>5}" for p in list(labels) + [None]), file=fh)
        print(file=fh)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m classifiers.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="CSV with columns subject, text, label")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--model", default=None, help="keywords.tsv to load (default: the packaged model)")
    args = ap.parse_args(argv)
    rows = read_rows(args.file)
    clf = Classifier.load(args.model) if args.model else get_classifier()
    res = evaluate_rows(clf, rows)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
    else:
        _print_report(res, clf.labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
