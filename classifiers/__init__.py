"""Text classifier for 一键找代表: message text -> category decision -> routing.

Pure package: no Flask / SQLAlchemy / redis, nothing from liaison/, bot/, jobs/.

    from classifiers import get_classifier, Decision, route, RouteDecision, signature, similarity
    clf = get_classifier()
    d = clf.classify("公司拖欠工资三个月")      # Decision(category, confidence, keywords, scores)
    r = route(d, "公司拖欠工资三个月")          # RouteDecision(target, department_code, reasons, local_matter)
    clf.set_rules([{"keyword": "飞线充电", "category": "城乡建设", "weight": 5.0}])

Retrain: ``python -m classifiers.train``; evaluate: ``python -m classifiers.evaluate FILE.csv``.
"""
from .dedup import signature, similarity, similarity_threshold
from .model import LABELS, Classifier, Decision, Rule, get_classifier
from .routing import RouteDecision, RoutingConfig, get_routing_config, route, set_routing_config

__all__ = [
    "LABELS", "Classifier", "Decision", "Rule", "get_classifier",
    "RouteDecision", "RoutingConfig", "route", "get_routing_config", "set_routing_config",
    "signature", "similarity", "similarity_threshold",
]
