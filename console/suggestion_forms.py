"""Forms of the 代表建议 and 民生实事 pages (Flask-WTF: validation and the CSRF token of every POST).
Choices come from the domain's own tables (`liaison.suggestion.service`, `liaison.project.service`)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from liaison.suggestion import service as suggestions

RATING_CHOICES = list(suggestions.RATING_VALUES.items())
NATURE_CHOICES = list(suggestions.NATURES.items())


class SuggestionReviewForm(FlaskForm):
    decision = SelectField("审查意见", choices=[("pass", "通过"), ("send_back", "退回修改"), ("reject", "不予立案")],
                           validate_choice=True)
    note = TextAreaField("意见（退回或不予立案须填写）", validators=[Optional(), Length(max=500)])


class AssignForm(FlaskForm):
    lead = SelectField("主办单位", validators=[DataRequired("请选择主办单位")], validate_choice=True)
    co = SelectMultipleField("协办单位（可多选）", validators=[Optional()], validate_choice=True)
    nature = SelectField("性质", choices=NATURE_CHOICES, default="individual", validate_choice=True)
    key_supervision = BooleanField("列为重点督办")


class NatureForm(FlaskForm):
    nature = SelectField("性质", choices=NATURE_CHOICES, validate_choice=True)


class SuperviseForm(FlaskForm):
    kind = SelectField("督办方式", choices=list(suggestions.SUPERVISION_KINDS.items()), validate_choice=True)
    note = TextAreaField("督办内容", validators=[DataRequired("请填写督办内容"), Length(max=1000)])


class ExtendForm(FlaskForm):
    months = IntegerField("延期月数", default=1, validators=[InputRequired("请填写延期月数"),
                                                         NumberRange(1, 6, "延期月数应为 1 至 6")])
    reason = StringField("延期理由", validators=[DataRequired("请填写理由"), Length(max=500)])


class AnswerForm(FlaskForm):
    category = SelectField("答复类别", choices=[(k, f"{k} 类：{v}") for k, v in suggestions.ANSWER_CATEGORIES.items()],
                           validate_choice=True)
    text = TextAreaField("答复内容", validators=[DataRequired("请填写答复内容"), Length(max=5000)])


class SuggestionRateForm(FlaskForm):
    value = SelectField("测评", choices=RATING_CHOICES, validate_choice=True)
    comment = StringField("意见（可不填）", validators=[Optional(), Length(max=500)])


class NoteForm(FlaskForm):
    note = TextAreaField("落实情况", validators=[DataRequired("请填写落实情况"), Length(max=1000)])


class EntryForm(FlaskForm):
    title = StringField("问题标题", validators=[DataRequired("请填写问题标题"), Length(max=100)])
    cases = TextAreaField("诉求编号（空格、逗号或换行分隔）", validators=[DataRequired("请至少填写一件诉求"),
                                                                Length(max=5000)])


class DraftForm(FlaskForm):
    title = StringField("建议标题", validators=[DataRequired("请填写标题"), Length(max=100)])
    problems = TextAreaField("存在的问题", validators=[DataRequired("请填写问题"), Length(max=5000)])
    proposals = TextAreaField("意见建议", validators=[DataRequired("请填写建议"), Length(max=5000)])
    cosigners = StringField("附议代表编码（可不填，空格或逗号分隔）", validators=[Optional(), Length(max=500)])


# ------------------------------------------------------------------------------------------ 民生实事
class ScreenForm(FlaskForm):
    decision = SelectField("筛选", choices=[("accept", "采纳为候选项目"), ("decline", "不采纳")], validate_choice=True)
    note = StringField("说明（不采纳须填写理由）", validators=[Optional(), Length(max=500)])


class VoteForm(FlaskForm):
    title = StringField("票决名称", validators=[DataRequired("请填写票决名称"), Length(max=100)])
    level = SelectField("代表层级", validate_choice=True)
    proposals = SelectMultipleField("候选项目（已采纳的征集项目）", validators=[Optional()], validate_choice=True)
    others = TextAreaField("其他候选项目（每行一个）", validators=[Optional(), Length(max=3000)])
    max_choices = IntegerField("每位代表可选项目数", default=1,
                               validators=[InputRequired("请填写可选项目数"), NumberRange(1, 50, "可选项目数应为 1 至 50")])


class ProjectFromVoteForm(FlaskForm):
    candidate = SelectField("入选项目", validate_choice=True)
    lead = SelectField("牵头单位", validate_choice=True)


class MilestoneForm(FlaskForm):
    title = StringField("节点名称", validators=[DataRequired("请填写节点名称"), Length(max=100)])
    due = DateField("计划完成日期", validators=[InputRequired("请填写日期（如 2026-06-30）")])


class ProgressForm(FlaskForm):
    milestone = SelectField("完成的节点", validate_choice=True)
    note = StringField("完成情况", validators=[Optional(), Length(max=1000)])


class CompleteForm(FlaskForm):
    note = TextAreaField("完成情况", validators=[Optional(), Length(max=1000)])
