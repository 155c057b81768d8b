"""Operator commands run as processes against the test database."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from liaison.case import handling as casework
from liaison.case import service as cases
from liaison.core import db
from liaison.people.models import Resident
from tests.conftest import ROOT, settings_env


def manage(fake_wechat, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings_env(fake_wechat.base_url)}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_export_corrections_for_retraining(settings, demo_county, fake_wechat, tmp_path: Path):
    with db.session_scope() as session:
        person = Resident(oa_openid="o_manage")
        session.add(person)
        session.flush()
        case = cases.open_case(session, person, "幸福里小区门口的公交站牌倒了")
        casework.correct_category(session, case, cases.Actor("staff"), "交通运输", "公交设施")
    out = tmp_path / "corrections.csv"
    result = manage(fake_wechat, "export-corrections", str(out))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows == [{"text": "幸福里小区门口的公交站牌倒了", "category": "交通运输"}]


def test_create_first_staff_once(settings, fake_wechat):
    first = manage(fake_wechat, "create-staff", "县人大工委 王主任")
    assert first.returncode == 0 and "binding code" in first.stdout
    second = manage(fake_wechat, "create-staff", "另一个")
    assert second.returncode != 0


def test_missing_setting_stops_start_up_with_its_name(fake_wechat):
    env = {k: v for k, v in {**os.environ, **settings_env(fake_wechat.base_url)}.items() if k != "WECHAT_TOKEN"}
    result = subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "WECHAT_TOKEN" in result.stderr
