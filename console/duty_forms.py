"""Forms of the rota and 履职积分 pages (Flask-WTF: validation and the CSRF token of every POST)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from liaison.rota.models import SHIFT_KIND_LABELS

WEEKDAY_CHOICES = [(i, f"周{'一二三四五六日'[i]}") for i in range(7)]
KIND_CHOICES = list(SHIFT_KIND_LABELS.items())
POLICY_CHOICES = [("next_working_day", "节假日顺延到下一个工作日"), ("skip", "节假日不值班")]
HHMM = Regexp(r"^([01]?\d|2[0-3]):[0-5]\d$", message="时间格式为 时:分，如 9:00")


def minutes(value: str) -> int:
    """Minutes after midnight of a validated "H:MM"."""
    hours, mins = value.split(":")
    return int(hours) * 60 + int(mins)


def hhmm(minute: int) -> str:
    return f"{minute // 60}:{minute % 60:02d}"


class _Pool(FlaskForm):
    deputies = SelectMultipleField("值班代表（可多选）", validators=[Optional()], validate_choice=True)
    heads = SelectMultipleField("部门负责人（局长进站、监督岗）", validators=[Optional()], validate_choice=True)
    title = StringField("名称（如：代表周三见）", validators=[Optional(), Length(max=60)])
    start = StringField("开始", default="9:00", validators=[DataRequired("请填写开始时间"), HHMM])
    end = StringField("结束", default="11:30", validators=[DataRequired("请填写结束时间"), HHMM])

    def validate_end(self, field):
        if not self.start.errors and self.start.data and HHMM.regex.match(field.data or "") and \
                minutes(field.data) <= minutes(self.start.data):
            raise ValidationError("结束时间须晚于开始时间")


class RuleForm(_Pool):
    station = SelectField("联络站", validators=[DataRequired("请选择联络站")], validate_choice=True)
    kind = SelectField("类型", choices=KIND_CHOICES, default="reception", validate_choice=True)
    weekday = SelectField("每周", choices=WEEKDAY_CHOICES, coerce=int, default=2, validate_choice=True)
    slots = IntegerField("每班人数", default=2, validators=[DataRequired("请填写人数"), NumberRange(1, 20, "1–20 人")])
    holiday_policy = SelectField("遇节假日", choices=POLICY_CHOICES, validate_choice=True)
    on_makeup_days = BooleanField("调休上班的周末也值班")
    valid_from = DateField("起始日期（不填为今天）", validators=[Optional()])
    valid_until = DateField("结束日期（可不填）", validators=[Optional()])


class RuleEditForm(_Pool):
    weekday = SelectField("每周", choices=WEEKDAY_CHOICES, coerce=int, validate_choice=True)
    slots = IntegerField("每班人数", validators=[DataRequired("请填写人数"), NumberRange(1, 20, "1–20 人")])
    holiday_policy = SelectField("遇节假日", choices=POLICY_CHOICES, validate_choice=True)
    on_makeup_days = BooleanField("调休上班的周末也值班")
    valid_until = DateField("结束日期（可不填）", validators=[Optional()])
    active = BooleanField("启用")


class ShiftForm(_Pool):
    station = SelectField("联络站", validators=[DataRequired("请选择联络站")], validate_choice=True)
    kind = SelectField("类型", choices=KIND_CHOICES, default="director", validate_choice=True)
    day = DateField("日期", validators=[DataRequired("请填写日期")])


class CancelShiftForm(FlaskForm):
    reason = StringField("取消原因（将通知值班代表）", validators=[DataRequired("请填写取消原因"), Length(max=200)])


class DecisionForm(FlaskForm):
    note = TextAreaField("意见", validators=[Optional(), Length(max=200)])


class AdjustForm(FlaskForm):
    points = DecimalField("调整分值（可为负数）", places=2,
                          validators=[InputRequired("请填写调整分值"), NumberRange(-100, 100, "-100 至 100 分")])
    reason = StringField("调整原因", validators=[DataRequired("请填写调整原因"), Length(max=200)])
