"""Routing: Decision + text -> RouteDecision (a department, or the resident's grid deputy).

The routing table is configuration (``data/routing.json``, overridable with the environment
variable ``CLASSIFIER_ROUTING``), not code:

* ``keyword_rules`` — checked first, in order; the first rule with a keyword occurring in the
  message wins (e.g. 路灯/飞线充电/物业 → 属地事项 for the grid deputy; 欠薪/工资 → 人社局);
* ``categories`` — category → department code (or ``"deputy"``);
* ``min_confidence`` — below it, or with no category, the message goes to the grid deputy for
  triage: never to a guessed department.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field

from .model import PACKAGE_DIR, Decision

ROUTING_PATH = os.path.join(PACKAGE_DIR, "data", "routing.json")
DEPUTY = "deputy"
DEPARTMENT = "department"


@dataclass(slots=True)
class RouteDecision:
    target: str                      # "department" | "deputy"
    department_code: str | None
    reasons: list[str] = field(default_factory=list)
    local_matter: bool = False

    def to_dict(self) -> dict:
        return {"target": self.target, "department_code": self.department_code,
                "reasons": list(self.reasons), "local_matter": self.local_matter}


class RoutingConfig:
    def __init__(self, cfg: dict):
        self.raw = cfg
        self.min_confidence = float(cfg.get("min_confidence", 0.6))
        self.departments: dict[str, str] = dict(cfg.get("departments", {}))
        self.categories: dict[str, str] = dict(cfg.get("categories", {}))
        for cat, code in self.categories.items():
            if code != DEPUTY and code not in self.departments:
                raise ValueError(f"routing: category {cat!r} maps to unknown department {code!r}")
        rules = []
        for r in cfg.get("keyword_rules", []):
            target = r.get("target", DEPARTMENT)
            code = r.get("department")
            if target not in (DEPARTMENT, DEPUTY):
                raise ValueError(f"routing: bad target {target!r}")
            if target == DEPARTMENT and code not in self.departments:
                raise ValueError(f"routing: keyword rule maps to unknown department {code!r}")
            kws = tuple(k for k in r.get("keywords", []) if k)
            rules.append((kws, target, code if target == DEPARTMENT else None, bool(r.get("local_matter", target == DEPUTY))))
        self.keyword_rules = tuple(rules)
        dup = cfg.get("duplicate", {})
        self.similarity_threshold = float(dup.get("similarity_threshold", 0.5))
        self.signature_size = int(dup.get("signature_size", 24))

    @classmethod
    def load(cls, path: str | None = None) -> "RoutingConfig":
        path = path or os.environ.get("CLASSIFIER_ROUTING") or ROUTING_PATH
        with open(path, encoding="utf-8") as fh:
            return cls(json.load(fh))

    def dept_name(self, code: str | None) -> str:
        return self.departments.get(code or "", code or "")


_config: RoutingConfig | None = None
_config_lock = threading.Lock()


def get_routing_config() -> RoutingConfig:
    global _config
    cfg = _config
    if cfg is None:
        with _config_lock:
            if _config is None:
                _config = RoutingConfig.load()
            cfg = _config
    return cfg


def set_routing_config(cfg: RoutingConfig | dict | None) -> None:
    """Replace the routing table at runtime (None = reload from file on next use)."""
    global _config
    if isinstance(cfg, dict):
        cfg = RoutingConfig(cfg)
    with _config_lock:
        _config = cfg


def route(decision: Decision, text: str, config: RoutingConfig | None = None) -> RouteDecision:
    cfg = config or get_routing_config()
    text = text or ""
    # 1. keyword rules (configuration), first match wins
    for kws, target, code, local in cfg.keyword_rules:
        for kw in kws:
            if kw in text:
                if target == DEPUTY:
                    why = "属地事项，由网格代表办理" if local else "由网格代表办理"
                    return RouteDecision(DEPUTY, None, [f"关键词「{kw}」→ {why}"], local)
                return RouteDecision(DEPARTMENT, code, [f"关键词「{kw}」→ {cfg.dept_name(code)}"], local)
    # 2. no recognisable category -> grid deputy triage
    if decision.category is None:
        return RouteDecision(DEPUTY, None, ["未识别出明确类别 → 转网格代表分办"], False)
    conf = float(decision.confidence)
    cat = decision.category
    # 3. low confidence -> grid deputy triage, never a guessed department
    if conf < cfg.min_confidence:
        return RouteDecision(DEPUTY, None, [
            f"分类「{cat}」置信度 {conf:.2f} 低于阈值 {cfg.min_confidence:.2f} → 转网格代表分办"], False)
    code = cfg.categories.get(cat)
    kw_text = "、".join(k for k, _ in decision.keywords[:3])
    basis = f"（关键词：{kw_text}）" if kw_text else ""
    if code is None or code == DEPUTY:
        local = code == DEPUTY
        why = "属地事项，由网格代表办理" if local else "未配置承办部门，转网格代表分办"
        return RouteDecision(DEPUTY, None, [f"分类「{cat}」{basis} → {why}"], local)
    return RouteDecision(DEPARTMENT, code, [
        f"分类「{cat}」置信度 {conf:.2f}{basis} → {cfg.dept_name(code)}"], False)
