"""The OpenAPI 3.1 document, generated from the endpoint declarations and their pydantic models."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from .framework import ENDPOINTS, Endpoint
from .ratelimit import LIMITED_ENDPOINTS
from .schemas import ErrorOut

REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_STATUSES = {
    "400": "请求格式错误（如无效 JSON）", "401": "未登录或登录已失效", "403": "当前身份无权执行",
    "404": "不存在（或不可见）", "409": "当前状态不允许该操作", "413": "请求体或文件超过上限",
    "422": "字段校验失败", "429": "操作过于频繁（见 Retry-After）",
}


def openapi_path(flask_path: str) -> str:
    """`/cases/<public_id>` → `/cases/{public_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", flask_path)


def _schema(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema(ref_template=REF_TEMPLATE, mode="serialization")
    return _hoist(schema, components)


def _request_schema(model, components) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema(ref_template=REF_TEMPLATE, mode="validation")
    return _hoist(schema, components)


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    for name, definition in schema.pop("$defs", {}).items():
        _register(components, name, definition)
    if "title" in schema and "properties" in schema:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", schema["title"])
        _register(components, name, schema)
        return {"$ref": REF_TEMPLATE.format(model=name)}
    return schema


def _register(components: dict[str, Any], name: str, definition: dict[str, Any]) -> None:
    """One component per model name. Two different models with one name would make the document
    describe one of them wrongly (a client would be validated against the other's fields): refuse."""
    known = components.setdefault(name, definition)
    if known != definition:
        raise ValueError(f"two different API models are both named {name!r}: rename one")


def _query_parameters(spec: Endpoint, components) -> list[dict[str, Any]]:
    if spec.query is None:
        return []
    schema = spec.query.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", None)
        prop.pop("title", None)
        options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:  # a query string cannot carry null: "absent" is the null
            prop.pop("anyOf")
            prop.update(options[0])
        if prop.get("default", 0) is None:
            prop.pop("default")
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def _operation(spec: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": spec.name, "summary": spec.summary, "tags": [spec.tag]}
    parameters = [{"name": p, "in": "path", "required": True,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
                  for p in spec.path_params]
    parameters += _query_parameters(spec, components)
    if spec.idempotent:
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "description": "同一用户重发同一键时返回首次的结果（移动网络重试）",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 100}})
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _request_schema(spec.body, components)}}}
    if spec.roles is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-roles"] = list(spec.roles)
    success: dict[str, Any] = {"description": "成功"}
    if spec.response is not None:
        success["content"] = {"application/json": {"schema": _schema(spec.response, components)}}
    else:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(spec.status): success}
    error_ref = {"content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="ErrorOut")}}}}
    wanted = {"400", "404", "422"} if spec.roles is None else set(ERROR_STATUSES) - {"429"}
    if spec.name in LIMITED_ENDPOINTS:
        wanted.add("429")
    if spec.name == "login":
        wanted |= {"401", "502", "503"}
    for status in sorted(wanted):
        responses[status] = {"description": ERROR_STATUSES.get(status, "微信服务不可用"), **error_ref}
    operation["responses"] = responses
    return operation


@lru_cache(maxsize=4)
def build_document(server_url: str | None = None) -> dict[str, Any]:
    """The whole document; every declared endpoint appears, nothing else."""
    components: dict[str, Any] = {}
    _hoist(ErrorOut.model_json_schema(ref_template=REF_TEMPLATE), components)
    paths: dict[str, Any] = {}
    for spec in ENDPOINTS:
        paths.setdefault(openapi_path(spec.full_path), {})[spec.method.lower()] = _operation(spec, components)
    document = {
        "openapi": "3.1.0",
        "info": {"title": "一键找代表 小程序接口", "version": "1.0.0",
                 "description": "错误统一为 {\"error\": {\"code\", \"message\", \"field\"}}；"
                                "列表统一分页 ?page=1&page_size=20 → {items, page, page_size, total}；"
                                "POST 操作支持 Idempotency-Key 头。"},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
