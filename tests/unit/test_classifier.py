"""Tests for the classifiers package (text -> Decision -> RouteDecision; signatures)."""
from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
import threading

import pytest

from classifiers import (
    Decision,
    RouteDecision,
    RoutingConfig,
    get_classifier,
    route,
    signature,
    similarity,
    similarity_threshold,
)
from classifiers.evaluate import evaluate_rows, metrics, read_rows
from classifiers.model import LABELS, Classifier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "teddy2020c"))
DEV = os.path.join(DATA_DIR, "dev.csv")


def require_dev_set(path: str, environ=os.environ) -> None:
    """Skip a test that needs the shared dev set where it is missing, except in CI (`CI` set, as CI
    services do): there a missing set must not let the quality floor pass silently, so it fails."""
    if os.path.exists(path):
        return
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set but the shared dev set is missing: {path}", pytrace=False)
    pytest.skip("shared dev.csv not available")


@pytest.fixture
def clf():
    c = get_classifier()
    c.set_rules([])
    yield c
    c.set_rules([])


def decide(clf, text):
    d = clf.classify(text)
    return d, route(d, text)


def test_singleton_and_decision_shape(clf):
    assert get_classifier() is clf
    d = clf.classify("公司拖欠工资三个月")
    assert isinstance(d, Decision)
    assert d.category == "劳动和社会保障"
    assert 0.0 <= d.confidence <= 1.0
    assert set(d.scores) == set(LABELS)
    assert d.keywords and len(d.keywords) <= 8
    weights = [w for _, w in d.keywords]
    assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
    assert any("工资" in k for k, _ in d.keywords)
    dd = json.loads(json.dumps(d.to_dict(), ensure_ascii=False))
    assert dd["category"] == "劳动和社会保障" and isinstance(dd["keywords"][0][0], str)


def test_fly_line_charging_goes_to_grid_deputy(clf):
    d, r = decide(clf, "小区楼道里有人飞线充电")
    assert isinstance(r, RouteDecision)
    assert r.target == "deputy" and r.department_code is None and r.local_matter is True
    assert any("属地" in x for x in r.reasons)


def test_unpaid_wages_go_to_renshe(clf):
    d, r = decide(clf, "公司拖欠工资三个月")
    assert r.target == "department" and r.department_code == "renshe"
    assert r.reasons and all(isinstance(x, str) for x in r.reasons)
    assert r.to_dict() == {"target": "department", "department_code": "renshe",
                           "reasons": r.reasons, "local_matter": False}


@pytest.mark.parametrize("text,category,dept", [
    ("工厂排放污水臭味很大", "环境保护", "shengtai"),
    ("医院乱收费看病贵", "卫生计生", "weijian"),
    ("孩子上学学区划片不合理", "教育文体", "jiaoyu"),
    ("超市卖过期食品", "商贸旅游", "shichang"),
    ("养老保险断缴了怎么补缴", "劳动和社会保障", "renshe"),
])
def test_short_messages_classify_and_route(clf, text, category, dept):
    d, r = decide(clf, text)
    assert d.category == category
    assert r.target == "department" and r.department_code == dept
    assert r.local_matter is False


@pytest.mark.parametrize("text", ["", "   ", "asdf qwer zxcv", "？？？！！", "12"])
def test_empty_or_nonsense_goes_to_deputy_triage(clf, text):
    d, r = decide(clf, text)
    assert d.category is None and d.confidence == 0.0 and d.keywords == []
    assert r.target == "deputy" and r.department_code is None and not r.local_matter
    assert r.reasons


def test_low_confidence_never_goes_to_a_guessed_department(clf):
    d, r = decide(clf, "我想问一下")
    assert d.confidence < 0.6
    assert r.target == "deputy" and r.department_code is None
    # the same decision with a confident score goes to the department of its category
    sure = Decision(d.category or "城乡建设", 0.99, [], {})
    assert route(sure, "我想问一下").target == "department"
    unsure = Decision("环境保护", 0.3, [], {})
    r2 = route(unsure, "something")
    assert r2.target == "deputy" and "0.30" in r2.reasons[0]


def test_routing_is_configuration():
    cfg = RoutingConfig({
        "min_confidence": 0.5,
        "departments": {"shengtai": "生态环境局", "renshe": "人社局"},
        "categories": {"环境保护": "shengtai", "城乡建设": "deputy"},
        "keyword_rules": [{"keywords": ["噪音"], "target": "deputy", "local_matter": True}],
    })
    d = Decision("环境保护", 0.9, [("污水", 1.0)], {})
    assert route(d, "污水横流", cfg).department_code == "shengtai"
    r = route(d, "晚上噪音很大", cfg)
    assert r.target == "deputy" and r.local_matter and "「噪音」" in r.reasons[0]
    r = route(Decision("城乡建设", 0.9, [], {}), "路面破了", cfg)
    assert r.target == "deputy" and r.local_matter
    r = route(Decision("卫生计生", 0.9, [], {}), "医院", cfg)  # category not configured -> triage
    assert r.target == "deputy" and r.department_code is None
    with pytest.raises(ValueError):
        RoutingConfig({"departments": {}, "categories": {"环境保护": "nowhere"}})


def test_runtime_rules_change_outcome_without_reload(clf):
    text = "门口那个摊子天天占着路口"
    before = clf.classify(text)
    target = next(lab for lab in LABELS if lab != before.category)
    clf.set_rules([{"keyword": "摊子", "category": target, "weight": 5.0}])
    after = clf.classify(text)
    assert after.category == target
    assert ("摊子", 5.0) in after.keywords
    assert after.scores[target] == pytest.approx(before.scores[target] + 5.0)
    assert get_classifier() is clf
    clf.set_rules([])
    assert clf.classify(text).category == before.category
    # negative weights suppress a category
    d = clf.classify("公司拖欠工资三个月")
    clf.set_rules([("工资", "劳动和社会保障", -10.0)])
    assert clf.classify("公司拖欠工资三个月").category != d.category


def test_rule_validation(clf):
    with pytest.raises(ValueError):
        clf.set_rules([{"keyword": "x", "category": "不存在的类别", "weight": 1}])
    with pytest.raises(ValueError):
        clf.set_rules([{"keyword": "", "category": "城乡建设", "weight": 1}])
    assert clf.rules == ()


def test_set_rules_is_thread_safe(clf):
    errors = []

    def reader():
        try:
            for _ in range(200):
                d = clf.classify("路口摊子占道")
                assert d.category in LABELS
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(200):
        clf.set_rules([{"keyword": "摊子", "category": LABELS[i % len(LABELS)], "weight": 3.0}])
    for t in threads:
        t.join()
    assert not errors


def test_signature_and_similarity():
    a = signature("魏家坡小区路灯坏了三个月，晚上出行很不方便")
    b = signature("魏家坡小区的路灯坏了好几个月，晚上黑漆漆的")
    c = signature("公司拖欠工资三个月不发")
    assert isinstance(a, frozenset) and "路灯" in a and "魏家坡" in a
    assert similarity(a, a) == pytest.approx(1.0)
    assert similarity(a, b) == pytest.approx(similarity(b, a))
    assert similarity(a, b) > similarity(a, c)
    assert similarity(a, b) >= similarity_threshold()
    assert similarity(a, c) < similarity_threshold()
    assert similarity(frozenset(), a) == 0.0
    assert signature("") == frozenset()
    assert len(signature("路灯 " * 10 + "、".join(f"词{i}号" for i in range(100)), size=5)) <= 5


def test_metrics_function():
    m = metrics(["城乡建设", "城乡建设", "环境保护"], ["城乡建设", "环境保护", "环境保护"], ["城乡建设", "环境保护"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["per_class"]["城乡建设"]["precision"] == 1.0
    assert m["per_class"]["城乡建设"]["recall"] == 0.5
    assert m["per_class"]["环境保护"]["precision"] == 0.5
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_evaluate_json_shape(tmp_path):
    # synthetic file (no dataset rows): the command prints exactly one JSON object
    f = tmp_path / "mini.csv"
    with open(f, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "text", "label"])
        w.writerow(["拖欠工资", "公司拖欠工资三个月", "劳动和社会保障"])
        w.writerow(["工厂排污", "工厂排放污水臭味很大", "环境保护"])
        w.writerow(["医院收费", "医院乱收费看病贵", "卫生计生"])
    out = subprocess.run([sys.executable, "-m", "classifiers.evaluate", str(f), "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert out.stdout.strip().count("\n") == 0
    assert set(obj) >= {"subject+text", "subject"}
    for mode in ("subject+text", "subject"):
        for key in ("macro_f1", "accuracy", "msgs_per_s"):
            assert isinstance(obj[mode][key], (int, float))
        assert obj[mode]["accuracy"] == 1.0


def test_missing_dev_set_skips_locally_and_fails_in_ci(tmp_path):
    missing = str(tmp_path / "dev.csv")
    with pytest.raises(pytest.skip.Exception):
        require_dev_set(missing, environ={})
    with pytest.raises(pytest.skip.Exception):
        require_dev_set(missing, environ={"CI": "false"})
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_dev_set(missing, environ={"CI": "true"})
    (tmp_path / "dev.csv").write_text("subject,text,label\n", encoding="utf-8")
    require_dev_set(missing, environ={"CI": "true"})  # present: runs


def test_dev_accuracy_floor(clf):
    require_dev_set(DEV)
    with open(DEV, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    res = evaluate_rows(clf, rows[::2])
    assert res["subject+text"]["macro_f1"] > 0.88
    assert res["subject"]["macro_f1"] > 0.84


SHORT_DIR = os.path.join(REPO, "classifiers", "data")
# The repository's own short chat-style sets (written by the team, no rows of the shared data):
# short_eval.csv is the set the civic vocabulary was written against (target >= 0.92);
# short_holdout.csv was written afterwards without looking at the classifier's errors, so it is
# the honest figure.
# short_dev.csv (tuning set of the colloquial synonyms) and short_holdout2.csv (a second held-out set)
# were both written before the classifier was run on them (their # header says so).
# With the colloquial synonyms: 0.964, 0.879, 0.932, 0.859 (subject+text); the held-out sets have not
# reached the 0.92 target yet, their floors guard against regressions.
SHORT_FLOORS = {"short_eval.csv": 0.92, "short_holdout.csv": 0.87, "short_dev.csv": 0.92,
                "short_holdout2.csv": 0.85}


@pytest.mark.parametrize("name", sorted(SHORT_FLOORS))
def test_short_message_sets_stay_above_their_floors(clf, name):
    rows = read_rows(os.path.join(SHORT_DIR, name))
    assert len(rows) >= 100
    assert {r["label"] for r in rows} == set(LABELS)
    assert all(r["subject"] == r["text"] for r in rows)  # one chat line: subject and text alike
    res = evaluate_rows(clf, rows)
    for mode in ("subject+text", "subject"):
        assert res[mode]["macro_f1"] >= SHORT_FLOORS[name], (mode, res[mode]["macro_f1"])


def test_model_table_is_readable_and_small():
    path = os.path.join(REPO, "classifiers", "data", "keywords.tsv")
    assert os.path.getsize(path) < 5_000_000
    c = Classifier.load(path)
    assert c.labels == LABELS and 0 < c.temperature < 10
    with open(path, encoding="utf-8") as fh:
        header = [next(fh) for _ in range(4)]
    assert header[3].rstrip("\n").split("\t") == ["keyword", "category", "weight", "idf"]


def test_private_tokenizer_leaves_global_jieba_untouched():
    import jieba

    from classifiers import tokenize as T
    tk = T.get_tokenizer()
    assert tk is not jieba.dt
    assert "飞线充电" in tk.FREQ
    jieba.initialize()
    assert jieba.dt.FREQ.get("飞线充电") is None
    assert "飞线充电" in T.tokens("有人飞线充电")


def test_package_is_pure():
    forbidden = ("flask", "sqlalchemy", "redis", "liaison", "bot", "jobs", "numpy", "sklearn")
    pkg = os.path.join(REPO, "classifiers")
    for name in os.listdir(pkg):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(pkg, name), encoding="utf-8").read())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            for m in mods:
                assert m.split(".")[0].lower() not in forbidden, f"{name} imports {m}"


# ---------------------------------------------------------------- fast feature path

SYNTHETIC = [
    "", " ", "小区楼道里有人飞线充电，很危险", "公司拖欠工资三个月不发！！", "A3区 12345热线 PM2.5 wifi",
    "abc123 def", "C++和C#、e-mail地址%", "1.5元\n\t第二行", "魏家坡小区路灯坏了三个月，晚上出行很不方便",
    "？？？", "养老保险断缴了怎么补缴？请问社保局在哪里办理", "ｆｕｌｌ　ｗｉｄｔｈ全角字符",
]


def test_fast_cut_is_identical_to_jieba_without_hmm():
    from classifiers import tokenize as T
    tk = T.get_tokenizer()
    for text in SYNTHETIC:
        assert T.cut(text) == tk.lcut(text, HMM=False), text


def test_fast_cut_is_identical_on_dev_texts():
    require_dev_set(DEV)
    from classifiers import tokenize as T
    tk = T.get_tokenizer()
    with open(DEV, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:300]
    for r in rows:
        for text in (r["subject"], r["text"]):
            assert T.cut(text) == tk.lcut(text, HMM=False)


def test_features_are_tokens_plus_char_bigrams():
    from classifiers import tokenize as T
    text = "公司拖欠我的工资"
    toks = T.cut(text)
    f = T.features(text)
    for i in range(len(text) - 1):
        bg = text[i:i + 2]
        assert f[bg] == sum(text[j:j + 2] == bg for j in range(len(text) - 1)) + toks.count(bg)
    for t in toks:
        assert f[t] >= 1
    assert "工资" in toks and f["工资"] == 2  # a two-character word counts as word and as bigram
    c = T.feature_counts("医院", subject="工资", subject_weight=5)
    assert c["工资"] == 10 and c["医院"] == 2


def test_vocabulary_filter():
    from classifiers import tokenize as T
    for bad in ("的", "我们", "，", "A3", "3区", "12", " ", "资，"):
        assert not T.is_feature(bad), bad
    for good in ("工资", "飞线充电", "12345", "wifi"):
        assert T.is_feature(good), good


def test_scores_follow_the_documented_formula():
    import math

    from classifiers import tokenize as T
    table = {"工资": (2.0, {"劳动和社会保障": 1.5, "城乡建设": -0.5}), "医院": (1.0, {"卫生计生": 2.0}),
             "拖欠": (3.0, {})}
    bias = {lab: -0.1 for lab in LABELS}
    c = Classifier.from_parts(table, bias, {"labels": list(LABELS), "temperature": 0.5, "subject_weight": 3})
    for text, subject in (("公司拖欠工资工资，医院", None), ("医院", "拖欠工资"), ("拖欠工资", None)):
        feats = T.feature_counts(text, subject=subject, subject_weight=3)
        xs = {f: idf * (1 + math.log(feats[f])) for f, (idf, _) in table.items() if feats.get(f)}
        norm = math.sqrt(sum(x * x for x in xs.values()))
        d = c.classify(text, subject=subject)
        for lab in LABELS:
            want = -0.1 + sum(table[f][1].get(lab, 0.0) * x for f, x in xs.items()) / norm
            assert d.scores[lab] == pytest.approx(want)
        assert d.category == max(d.scores, key=d.scores.get)
        z = sum(math.exp((s - d.scores[d.category]) / 0.5) for s in d.scores.values())
        assert d.confidence == pytest.approx(1 / z)
        assert d.keywords and all(w > 0 for _, w in d.keywords)
    assert c.weights("工资") == pytest.approx({"劳动和社会保障": 1.5, "城乡建设": -0.5})
    assert c.idf("拖欠") == 3.0 and c.idf("没有") is None


def test_explanation_prefers_words_over_char_bigrams(clf):
    d = clf.classify("我们公司拖欠农民工工资已经三个月了，劳动监察大队不管")
    assert d.category == "劳动和社会保障"
    from classifiers import tokenize as T
    words = set(T.cut("我们公司拖欠农民工工资已经三个月了，劳动监察大队不管"))
    assert d.keywords and all(k in words for k, _ in d.keywords)


# ---------------------------------------------------------------- training helpers (synthetic data only)
def test_group_key_keeps_reposts_together():
    from classifiers.train import group_key
    assert group_key("A3区某小区路灯不亮！") == group_key("A5区 某小区路灯不亮")
    assert group_key("拖欠工资") != group_key("路灯不亮")


def test_table_scores_match_classifier():
    from classifiers import tokenize as T
    from classifiers.train import table_scores
    table = {"工资": (2.0, {"劳动和社会保障": 1.5, "城乡建设": -0.5}), "医院": (1.0, {"卫生计生": 2.0}),
             "拖欠": (3.0, {})}
    bias = {lab: -0.1 for lab in LABELS}
    c = Classifier.from_parts(table, bias, {"labels": list(LABELS), "temperature": 1.0, "subject_weight": 3})
    for text, subject in (("公司拖欠工资工资，医院", None), ("医院", "拖欠工资")):
        got = table_scores(table, bias, T.feature_counts(text, subject=subject, subject_weight=3))
        assert got == pytest.approx(c.classify(text, subject=subject).scores)
    assert table_scores(table, bias, T.feature_counts("天气不错")) is None


def test_out_of_fold_calibration_never_scores_a_group_it_trained_on():
    from classifiers import tokenize as T
    from classifiers import train as TR
    words = {"劳动和社会保障": ["工资", "社保", "养老金"], "卫生计生": ["医院", "医生", "疫苗"],
             "交通运输": ["公交", "地铁", "出租车"]}
    examples, views = [], []
    for lab, ws in words.items():
        for i in range(12):
            subj = f"{ws[i % 3]}问题{'一二三四五六七八九十甲乙'[i]}"
            text = f"关于{ws[i % 3]}和{ws[(i + 1) % 3]}的反映"
            g = TR.group_key(subj)
            examples.append((T.feature_counts(text, subject=subj, subject_weight=TR.SUBJECT_WEIGHT), lab, 1.0))
            examples.append((T.feature_counts(subj), lab, 1.0))
            views += [(g, "full"), (g, "subject")]
    examples.append((T.feature_counts("公交"), "交通运输", 1.0))
    views.append((None, "seed"))
    scores, golds = TR.out_of_fold_scores(examples, views, folds=3, log=lambda m: None)
    assert len(scores) == len(golds) == 72           # every row's two views, scored once
    assert all(set(s) == set(LABELS) for s in scores)
    correct = sum(max(s, key=s.get) == g for s, g in zip(scores, golds))
    assert correct >= 60
    t = TR.fit_temperature(scores, golds)
    assert 0.03 <= t <= 10


def test_bias_offsets_move_a_category_that_scores_too_high():
    # synthetic out-of-fold scores: every message scores 交通运输 0.1 too high, so all go there;
    # the fitted offsets restore the gold category of each (macro-F1 1.0) and stay within the limit
    from classifiers import train as TR
    scores, golds = [], []
    for lab in LABELS:
        for _ in range(5):
            s = dict.fromkeys(LABELS, 0.0)
            s[lab] += 0.05
            s["交通运输"] += 0.1
            scores.append(s)
            golds.append(lab)
    zero = dict.fromkeys(LABELS, 0.0)
    assert TR._macro_f1(scores, golds, zero) < 0.1
    off = TR.fit_bias_offsets(scores, golds)
    assert TR._macro_f1(scores, golds, off) == 1.0
    assert all(abs(v) <= TR.OFFSET_LIMIT for v in off.values())
    assert TR.fit_bias_offsets([dict(zero, **{g: 1.0}) for g in golds], golds) == zero  # nothing to fix


def test_training_keeps_seed_terms_whatever_their_frequency():
    from classifiers import tokenize as T
    from classifiers import train as TR
    examples = []
    for lab, w in (("劳动和社会保障", "工资"), ("卫生计生", "医院"), ("交通运输", "公交")):
        for i in range(6):
            examples.append((T.feature_counts(f"{w}问题{'一二三四五六'[i]}"), lab, 1.0))
    examples.append((T.feature_counts("欠薪"), "劳动和社会保障", 1.0))  # a seed term seen once (< MIN_DF)
    table, _ = TR.train(examples, log=lambda m: None)
    assert "欠薪" not in table
    table, _ = TR.train(examples, log=lambda m: None, keep={"欠薪"})
    assert "欠薪" in table


def test_extra_training_rows_come_in_three_views_at_their_cost(tmp_path):
    from classifiers import train as TR
    (tmp_path / "train.csv").write_text("id,subject,text,label\n1,拖欠工资,公司三个月不发工资,劳动和社会保障\n",
                                        encoding="utf-8")
    extra = tmp_path / "extra.csv"
    extra.write_text("# written for the test\nsubject,text,label\n公交太少,等车一个小时,交通运输\n"
                     "没有标签,这一行不算,\n", encoding="utf-8")
    views: list = []
    ex = TR.build_examples(str(tmp_path), None, log=lambda m: None, views=views, extra=str(extra), extra_weight=0.25)
    extra_ex = [e for e, (g, v) in zip(ex, views) if v == "extra"]
    assert [(lab, cost) for _, lab, cost in extra_ex] == [("交通运输", 0.25)] * 3
    assert all(g is None for g, v in views if v == "extra")  # never in a held-out fold
    assert "公交" in extra_ex[1][0] and "等车" in extra_ex[2][0] and "公交" not in extra_ex[2][0]
    assert len([v for _, v in views if v in ("full", "subject", "text")]) == 3


def test_evaluate_skips_comment_header(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("# written before the classifier saw it\n# second comment\nsubject,text,label\n"
                 "拖欠工资,拖欠工资,劳动和社会保障\n", encoding="utf-8")
    rows = read_rows(str(f))
    assert [r["label"] for r in rows] == ["劳动和社会保障"]


def test_colloquial_term_reads_as_its_standard_term():
    from classifiers import tokenize as T
    syn = T.colloquial()
    assert len(syn) >= 300
    c = Classifier.load(os.path.join(REPO, "classifiers", "data", "keywords.tsv"))
    assert c.aliases  # some colloquial terms have no row of their own
    for term, std in c.aliases.items():
        assert syn[term] == std
        assert c.weights(term) == c.weights(std) and c.idf(term) == c.idf(std)
    # in a table with 噪音 but neither 闹腾 nor 吵 of its own, 闹腾 reads as 噪音; a term with a row
    # of its own keeps it (the synonym never overrides what was learned)
    assert syn["闹腾"] == "噪音" and syn["吵"] == "噪音"
    table = {"吵": (2.0, {"城乡建设": 1.0}), "噪音": (3.0, {"环境保护": 2.0})}
    small = Classifier(table, {}, {"labels": list(LABELS)})
    assert small.aliases.get("闹腾") == "噪音" and "吵" not in small.aliases
    assert small.weights("吵") == {"城乡建设": 1.0}
    d = small.classify("闹腾")
    assert d.category == "环境保护" and [k for k, _ in d.keywords] == ["闹腾"]


def test_colloquial_phrases_are_single_tokens_and_explained(clf):
    from classifiers import tokenize as T
    assert T.colloquial()["黑灯瞎火"] == "路灯"
    assert "黑灯瞎火" in T.cut("门口那段路晚上黑灯瞎火的")
    d = clf.classify("门口那段路晚上黑灯瞎火的")
    assert d.category == "城乡建设"
    assert "黑灯瞎火" in [k for k, _ in d.keywords]  # the resident's own word; colloquial.tsv says what it stands for
