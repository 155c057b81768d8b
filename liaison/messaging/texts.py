"""Texts sent to residents that more than one domain writes: kept here, below the conversation and
the delivery worker that both send them. (Issue 14 gathers every resident-facing text in one place.)"""
from __future__ import annotations


def rating_prompt_text(case_number: str, summary: str | None) -> str:
    """The satisfaction prompt (满意 / 基本满意 / 不满意), by chat reply."""
    lines = [f"您的诉求 {case_number} 已办结。"]
    if summary:
        lines.append(f"办理情况：{summary[:200]}")
    lines.append("请回复数字评价：1 满意　2 基本满意　3 不满意")
    return "\n".join(lines)
