"""Request and response models of the mini-program API (pydantic v2; they also make the OpenAPI
document's schemas)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

Text = Field(min_length=1, max_length=2000)
Short = Field(min_length=1, max_length=500)
Photo = Field(min_length=1, max_length=500)
Code = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")
Reason = Field(min_length=1, max_length=500, pattern=r"\S",
               description="理由（必填，不能只有空白），写入办理时间线")

RoleName = Literal["resident", "deputy", "department", "staff", "city"]  # city: city staff (/api/city/...)
RatingValue = Literal["satisfied", "basically_satisfied", "unsatisfied"]
ConsentResult = Literal["accept", "reject", "ban", "filter"]


class Request(BaseModel):
    """Requests refuse unknown fields (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ----------------------------------------------------------------------------------------- requests
class LoginIn(Request):
    code: str = Field(min_length=1, max_length=128, description="wx.login() 返回的 code")
    county: str | None = Field(None, min_length=1, max_length=32,
                               description="小程序所在县（区）的编码；新用户属于该县，不填为默认县")


class BindIn(Request):
    binding_code: str = Field(min_length=4, max_length=32, description="工委发放的一次性绑定码")


class Location(Request):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    label: str | None = Field(default=None, max_length=200)


class CaseIn(Request):
    text: str = Text
    photos: list[str] = Field(default_factory=list, max_length=9,
                              description="图片的 media id 或 URL（最多 9 张）")
    location: Location | None = None
    grid_code: str | None = Field(default=None, min_length=1, max_length=32,
                                  description="扫码进入时的网格编码")

    @field_validator("photos")
    @classmethod
    def _photos(cls, value: list[str]) -> list[str]:
        if any(not p.strip() or len(p) > 500 for p in value):
            raise ValueError("图片标识无效")
        return value


class InformationIn(Request):
    text: str = Text
    photos: list[str] = Field(default_factory=list, max_length=9)

    @field_validator("photos")
    @classmethod
    def _photos(cls, value: list[str]) -> list[str]:
        if any(not p.strip() or len(p) > 500 for p in value):
            raise ValueError("图片标识无效")
        return value


class RatingIn(Request):
    value: RatingValue
    comment: str | None = Field(default=None, max_length=500)


Attachments = Field(default_factory=list, max_length=9,
                    description="附上的办理照片：本人为该诉求上传（POST /cases/{id}/attachments）且尚未使用的附件 id")


class ReplyIn(Request):
    text: str = Text
    attachments: list[Annotated[str, Field(min_length=1, max_length=24)]] = Attachments


class QuestionIn(Request):
    question: str = Short


class DispatchIn(Request):
    department_code: str = Code
    working_days: int | None = Field(default=None, ge=1, le=60)
    note: str | None = Field(default=None, max_length=500)


class UrgeIn(Request):
    note: str | None = Field(default=None, max_length=500)


class CloseIn(Request):
    summary: str = Text
    attachments: list[Annotated[str, Field(min_length=1, max_length=24)]] = Attachments


class ReasonIn(Request):
    reason: str = Short


class MergeIn(Request):
    into: str = Field(min_length=1, max_length=24,
                      description="并入的诉求：编号（如 2026-000123）或 id；须为仍在办理中的诉求")
    reason: str = Reason


class RejectIn(Request):
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S",
                        description="不予受理的理由及建议的反映渠道（必填），会告知群众")


class CategoryIn(Request):
    category: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(default=None, max_length=500)


class ExtensionIn(Request):
    working_days: int = Field(ge=1, le=30)
    reason: str = Short


class DecisionIn(Request):
    note: str | None = Field(default=None, max_length=500)


class ReassignIn(Request):
    deputy_code: str | None = Field(default=None, min_length=1, max_length=32)
    department_code: str | None = Field(default=None, min_length=1, max_length=32)
    category: str | None = Field(default=None, min_length=1, max_length=32)
    reason: str = Short


class StationIn(Request):
    code: str = Code
    name: str = Field(min_length=1, max_length=100)
    address: str | None = Field(default=None, max_length=200)
    reception_hours: str | None = Field(default=None, max_length=100)


class GridIn(Request):
    code: str = Code
    name: str = Field(min_length=1, max_length=100)
    aliases: list[str] = Field(default_factory=list, max_length=20)
    station_code: str | None = Field(default=None, min_length=1, max_length=32)
    kind: Literal["community", "enterprise", "chain"] = Field(
        default="community", description="community：社区网格；enterprise：企业网格；chain：产业链联络站")


class DeputyGridIn(Request):
    grid_code: str = Field(min_length=1, max_length=32)
    role: Literal["lead", "assist"] = "lead"


class DeputyIn(Request):
    code: str = Code
    name: str = Field(min_length=1, max_length=50)
    level: Literal["national", "province", "city", "county", "township"]
    station_code: str | None = Field(default=None, min_length=1, max_length=32)
    duties: str | None = Field(default=None, max_length=200)
    reception_hours: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    grids: list[DeputyGridIn] = Field(default_factory=list, max_length=20)


class DepartmentIn(Request):
    code: str = Code
    name: str = Field(min_length=1, max_length=100)


class AccountIn(Request):
    role: Literal["deputy", "department", "staff"]
    name: str = Field(min_length=1, max_length=50)
    deputy_code: str | None = Field(default=None, min_length=1, max_length=32)
    department_code: str | None = Field(default=None, min_length=1, max_length=32)
    station_code: str | None = Field(default=None, min_length=1, max_length=32,
                                     description="工委账号：限定为该联络站的网格；不填为全县")


class ConsentIn(Request):
    results: dict[str, ConsentResult] = Field(
        min_length=1, max_length=20,
        description="wx.requestSubscribeMessage 的结果：{模板 id: accept|reject|ban|filter}")

    @field_validator("results")
    @classmethod
    def _ids(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not 1 <= len(k) <= 64 for k in value):
            raise ValueError("模板 id 无效")
        return value


# ----------------------------------------------------------------------------------------- queries
class PageQuery(Request):
    page: int = Field(default=1, ge=1, le=100000)
    page_size: int = Field(default=20, ge=1, le=100)


class CaseListQuery(PageQuery):
    status: str | None = Field(default=None, max_length=200,
                               description="状态，可用逗号分隔多个，如 assigned,accepted")
    overdue: bool | None = Field(default=None, description="只看已超期（true）或未超期（false）")
    category: str | None = Field(default=None, min_length=1, max_length=32)


class ExtensionListQuery(PageQuery):
    status: Literal["pending", "approved", "rejected"] | None = None


# ----------------------------------------------------------------------------------------- responses
class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(Out):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Out):
    error: ErrorBody


T = TypeVar("T")


class Page(Out, Generic[T]):
    items: list[T]
    page: int
    page_size: int
    total: int


class Ref(Out):
    code: str
    name: str


class MeOut(Out):
    role: RoleName
    role_label: str
    name: str
    id: str
    deputy: Ref | None = None
    department: Ref | None = None
    station: Ref | None = None
    grids: list[Ref] = Field(default_factory=list)


class LoginOut(Out):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    me: MeOut


class EventOut(Out):
    at: datetime
    actor_kind: str
    action: str
    label: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


class CaseOut(Out):
    view: Literal["full"] = Field(default="full", description="full：完整信息；follower：附议群众看到的简要信息")
    id: str = Field(description="public_id")
    number: str
    status: str
    status_label: str
    text: str
    category: str | None
    handler_kind: str | None
    handler: str
    grid: Ref | None
    department: Ref | None
    deputy: Ref | None = Field(default=None, description="负责代表（部门办理时由其督单）")
    round: int
    deadline: datetime | None
    overdue: bool
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    summary: str | None
    location: dict[str, Any] | None
    actions: list[str] = Field(description="当前用户可执行的操作")


class CaseDetailOut(CaseOut):
    photos: list[str]
    timeline: list[EventOut]


class ReplyOut(Out):
    at: datetime
    label: str
    text: str


class FollowedCaseOut(Out):
    """What a follower (并单, a resident whose similar message joined someone else's case) sees: that the
    matter is being handled, by whom and by when, the handler's public replies, and whether they can
    rate. Never the other resident's words, location, photos or timeline."""

    view: Literal["follower"] = "follower"
    id: str = Field(description="public_id")
    number: str
    status: str
    status_label: str
    category: str | None
    handler: str
    round: int
    deadline: datetime | None
    overdue: bool
    closed_at: datetime | None
    followed_at: datetime | None = Field(description="本人附议的时间")
    replies: list[ReplyOut] = Field(description="办理人的答复、办结情况")
    can_rate: bool
    actions: list[str] = Field(description="当前用户可执行的操作")


# A case as one caller sees it: in full, or the follower's reduced view (`view` tells which).
CaseItem = Annotated[CaseOut | FollowedCaseOut, Field(discriminator="view")]
CaseView = Annotated[CaseDetailOut | FollowedCaseOut, Field(discriminator="view")]


class ActionOut(Out):
    case: CaseView
    event: EventOut | None = None


class ExtensionOut(Out):
    id: str
    case_id: str
    case_number: str
    department: Ref | None
    working_days: int
    reason: str
    status: str
    decision_note: str | None
    old_deadline: datetime | None
    new_deadline: datetime | None
    created_at: datetime
    decided_at: datetime | None


class StationOut(Out):
    code: str
    name: str
    address: str | None
    reception_hours: str | None


class GridOut(Out):
    code: str
    name: str
    aliases: list[str]
    station: Ref | None
    kind: str = Field(default="community", description="community 社区 / enterprise 企业 / chain 产业链")


class DeputyOut(Out):
    code: str
    name: str
    level: str
    station: Ref | None
    duties: str | None
    reception_hours: str | None
    grids: list[Ref]


class DepartmentOut(Out):
    code: str
    name: str


class AccountOut(Out):
    id: str
    role: str
    name: str
    deputy: Ref | None
    department: Ref | None
    station: Ref | None
    bound: bool
    active: bool


class AccountCreatedOut(Out):
    account: AccountOut
    binding_code: str


class BindingCodeOut(Out):
    binding_code: str


class ConsentOut(Out):
    template_id: str
    last_result: str
    credits: int
    accepted_total: int


class ConsentListOut(Out):
    items: list[ConsentOut]


class NoticeOut(Out):
    id: str
    kind: str
    text: str
    case_id: str | None
    case_number: str | None
    created_at: datetime
    read_at: datetime | None
