"""Staff endpoints for the classifier's keyword rules and the corrections it learns from."""
from __future__ import annotations

from pydantic import Field
from sqlalchemy import select

from liaison.case import rules
from liaison.case.models import ClassifierCorrection

from . import schemas as s
from .framework import Context, endpoint, not_found, require_county_staff

STAFF = "staff"


class KeywordRuleIn(s.Request):
    keyword: str = Field(min_length=1, max_length=32)
    category: str = Field(min_length=1, max_length=32)
    weight: float = Field(ge=-rules.MAX_WEIGHT, le=rules.MAX_WEIGHT)


class KeywordRuleOut(s.Out):
    id: str
    keyword: str
    category: str
    weight: float


class CorrectionOut(s.Out):
    old_category: str | None
    new_category: str
    text: str


def _rule_out(rule: rules.KeywordRule) -> KeywordRuleOut:
    return KeywordRuleOut(id=rule.public_id, keyword=rule.keyword, category=rule.category, weight=rule.weight)


RULES_STAFF_ONLY = "只有县级工委账号可以维护分类规则"


@endpoint("GET", "/keyword-rules", summary="分类关键词规则（生效中）", roles=(STAFF,),
          response=list[KeywordRuleOut], tag="classifier")
def list_keyword_rules(ctx: Context):
    return [_rule_out(rule) for rule in rules.active_rules(ctx.session)]


@endpoint("POST", "/keyword-rules", summary="新增分类关键词规则（立即生效，无需重启）", roles=(STAFF,),
          body=KeywordRuleIn, response=KeywordRuleOut, status=201, tag="classifier")
def add_keyword_rule(ctx: Context):
    require_county_staff(ctx, RULES_STAFF_ONLY)
    rule = rules.add_rule(ctx.session, ctx.body.keyword, ctx.body.category, ctx.body.weight,
                          account_id=ctx.principal.account.id)  # a RuleError is answered 422 invalid_rule
    return _rule_out(rule)


@endpoint("POST", "/keyword-rules/<public_id>/remove", summary="停用分类关键词规则（立即生效）",
          roles=(STAFF,), response=KeywordRuleOut, tag="classifier",
          visible=lambda ctx, public_id: require_county_staff(ctx, RULES_STAFF_ONLY))
def remove_keyword_rule(ctx: Context, public_id: str):
    require_county_staff(ctx, RULES_STAFF_ONLY)
    rule = rules.remove_rule(ctx.session, public_id)
    if rule is None:
        raise not_found("规则")
    return _rule_out(rule)


@endpoint("GET", "/classifier-corrections", summary="人工纠正的分类（训练命令会吸收）", roles=(STAFF,),
          response=list[CorrectionOut], tag="classifier")
def list_corrections(ctx: Context):
    rows = ctx.session.scalars(select(ClassifierCorrection).order_by(ClassifierCorrection.id.desc()).limit(200))
    return [CorrectionOut(old_category=r.old_category, new_category=r.new_category, text=r.text) for r in rows]
