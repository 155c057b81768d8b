"""How the API is wired: one mapping of domain refusals to HTTP, endpoints registered one way, and an
import error in the API never hidden by the app factory."""
from __future__ import annotations

import sys

import pytest

from liaison.case.access import Forbidden
from liaison.case.lifecycle import IllegalTransition
from liaison.case.rules import RuleError
from liaison.case.service import NotFound
from liaison.core import errors
from liaison.core.errors import DomainError
from liaison.engagement.broadcasts import BroadcastError
from liaison.engagement.noticeboard import NoticeBoardError
from liaison.engagement.qrcodes import QrCodeError
from liaison.engagement.surveys import SurveyError
from liaison.engagement.votes import VoteError
from liaison.people.registry import ImportRejected, RegistryError
from liaison.people.service import AccountError
from miniprogram_api.framework import DOMAIN_ERROR_STATUS, domain_error

REFUSALS = [
    (NotFound(), 404, "not_found"),
    (Forbidden("只能处理本人的诉求"), 403, "forbidden"),
    (IllegalTransition("close", "submitted"), 409, "illegal_transition"),
    (IllegalTransition("rate", "closed", "this round is already rated"), 409, "illegal_transition"),
    (RuleError("未知类别：x", field="category"), 422, "invalid_rule"),
    (AccountError("already_bound", "该微信已绑定其他账号"), 409, "already_bound"),
    (AccountError("not_bindable", "请先通过小程序登录"), 403, "not_bindable"),
    (AccountError("invalid_binding_code", "绑定码无效或已过期"), 422, "invalid_binding_code"),
    (BroadcastError(errors.FORBIDDEN, "role_forbidden", "当前身份无权发布通知"), 403, "role_forbidden"),
    (SurveyError(errors.CONFLICT, "closed", "已结束"), 409, "closed"),
    (VoteError(errors.NOT_FOUND, "not_found", "票决不存在"), 404, "not_found"),
    (RegistryError(errors.CONFLICT, "duplicate_code", "编码已存在", "code"), 409, "duplicate_code"),
    (QrCodeError("not_found", "二维码类型无效"), 404, "not_found"),
    (QrCodeError("cap_reached", "已达上限"), 409, "cap_reached"),
    (NoticeBoardError("服务器缺少中文字体"), 409, "render_unavailable"),
    (ImportRejected([]), 422, "import_rejected"),
]


def test_every_kind_has_one_http_status():
    assert set(DOMAIN_ERROR_STATUS) == set(errors.KINDS)


@pytest.mark.parametrize("error,status,code", REFUSALS, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None)
def test_every_domain_refusal_is_a_domain_error_answered_with_its_status(error, status, code):
    assert isinstance(error, DomainError) and error.kind in errors.KINDS
    api = domain_error(error)
    assert (api.status, api.code) == (status, code)
    assert api.message and not api.message.isascii()  # Chinese, for the person who acted


def test_illegal_transition_tells_the_caller_in_chinese_and_logs_the_detail():
    error = IllegalTransition("close", "submitted")
    assert error.message == "当前状态（已提交）不能执行该操作"
    assert "close" in str(error)


def test_the_app_factory_does_not_hide_an_import_error_in_the_api(settings, monkeypatch):
    from webapp import create_app

    for name in [m for m in sys.modules if m == "miniprogram_api" or m.startswith("miniprogram_api.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "miniprogram_api.views", None)  # importing it raises ImportError
    with pytest.raises(ImportError):
        create_app(settings, start_background=False)


def test_endpoints_are_declared_by_the_modules_the_package_imports(app):
    from miniprogram_api.framework import ENDPOINTS

    api_rules = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("miniprogram_api.")}
    assert api_rules == {f"miniprogram_api.{spec.name}" for spec in ENDPOINTS}
