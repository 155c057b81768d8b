"""The console's forms (Flask-WTF: validation and the CSRF token of every POST)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional

from liaison.console.auth import MIN_PASSWORD


class SignInForm(FlaskForm):
    login = StringField("登录名", validators=[DataRequired("请输入登录名"), Length(max=32)])
    password = PasswordField("密码", validators=[DataRequired("请输入密码"), Length(max=200)])


class SetPasswordForm(FlaskForm):
    password = PasswordField("新密码", validators=[
        DataRequired("请输入新密码"), Length(min=MIN_PASSWORD, max=200, message=f"密码至少 {MIN_PASSWORD} 位")])
    confirm = PasswordField("再次输入", validators=[EqualTo("password", "两次输入的密码不一致")])


class ReassignForm(FlaskForm):
    deputy = SelectField("改派给代表", validators=[Optional()], validate_choice=True)
    department = SelectField("改派给承办单位", validators=[Optional()], validate_choice=True)
    reason = StringField("理由", validators=[Optional(), Length(max=200)])


class UrgeForm(FlaskForm):
    note = StringField("督办意见", validators=[Optional(), Length(max=200)])


class RejectForm(FlaskForm):
    reason = TextAreaField("不予受理理由（将告知群众）", validators=[DataRequired("请填写理由"), Length(max=500)])


class HandUpForm(FlaskForm):
    reason = TextAreaField("上报市级协调的理由", validators=[DataRequired("请填写理由"), Length(max=2000)])


class MergeForm(FlaskForm):
    into = StringField("并入诉求编号", validators=[DataRequired("请填写编号"), Length(max=20)])
    reason = TextAreaField("并单理由", validators=[DataRequired("请填写理由"), Length(max=500)])


class PlainForm(FlaskForm):
    """A button-only POST (sign out, issue a link, disable): only the CSRF token."""


class BulletinForm(FlaskForm):
    period = StringField("期间（如 2026-03 或 2026-Q1）", validators=[DataRequired("请填写期间"), Length(max=16)])
    station = SelectField("范围", validators=[Optional()], validate_choice=True)


class PublishForm(FlaskForm):
    working_days = IntegerField("整改期限（工作日）", default=10,
                                validators=[DataRequired("请填写整改期限"), NumberRange(1, 60, "1–60 个工作日")])


class RespondForm(FlaskForm):
    response = TextAreaField("整改情况", validators=[DataRequired("请填写整改情况"), Length(max=2000)])


class ReviewForm(FlaskForm):
    note = TextAreaField("核实意见", validators=[Optional(), Length(max=500)])


class PartnerForm(FlaskForm):
    name = StringField("对接方名称", validators=[DataRequired("请填写对接方名称"), Length(max=100)])


class TargetForm(FlaskForm):
    name = StringField("平台名称", validators=[DataRequired("请填写平台名称"), Length(max=100)])
    category = SelectField("类别", validators=[Optional()], validate_choice=True)
    endpoint = StringField("Open311 地址（以 /v2 结尾）", validators=[DataRequired("请填写地址"), Length(max=300)])
    api_key = StringField("对方签发的 api_key", validators=[DataRequired("请填写 api_key"), Length(max=128)])
    service_code = StringField("对方的服务代码（可不填）", validators=[Optional(), Length(max=64)])
    jurisdiction_id = StringField("jurisdiction_id（可不填）", validators=[Optional(), Length(max=64)])


class CountyForm(FlaskForm):
    """A county added by city staff (its own official account optional: all four fields or none)."""

    code = StringField("县编码", validators=[DataRequired("请填写县编码"), Length(max=32)])
    name = StringField("县名称", validators=[DataRequired("请填写县名称"), Length(max=100)])
    wechat_app_id = StringField("公众号 AppID", validators=[Optional(), Length(max=64)])
    wechat_app_secret = StringField("AppSecret", validators=[Optional(), Length(max=128)])
    wechat_token = StringField("Token", validators=[Optional(), Length(max=64)])
    wechat_encoding_aes_key = StringField("EncodingAESKey", validators=[
        Optional(), Length(min=43, max=43, message="EncodingAESKey 应为 43 位")])
