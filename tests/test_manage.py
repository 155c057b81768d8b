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


def test_second_create_staff_is_a_plain_refusal(settings, fake_wechat):
    assert manage(fake_wechat, "create-staff", "县人大工委 王主任").returncode == 0
    second = manage(fake_wechat, "create-staff", "另一个")
    assert second.returncode == 1
    assert "refused" in second.stderr and "Traceback" not in second.stderr


def test_unreachable_database_is_one_line(fake_wechat):
    env = {**os.environ, **settings_env(fake_wechat.base_url,
                                        DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")}
    for command in (["outbox", "failed"], ["create-staff", "x"], ["migrate"]):
        result = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("database unreachable")


def test_commands_use_the_demo_credentials_in_the_embedded_default(monkeypatch):
    """No DATABASE_URL/REDIS_URL: every command (not only serve) gets the demo's secrets."""
    import manage as manage_module

    for name in ("DATABASE_URL", "REDIS_URL", *manage_module.DEMO_ENV):
        monkeypatch.delenv(name, raising=False)
    settings = manage_module._settings()
    assert settings.embedded and settings.secret_key == manage_module.DEMO_ENV["SECRET_KEY"]


def _embedded_env(tmp_path: Path) -> dict[str, str]:
    import manage as manage_module

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", *manage_module.DEMO_ENV)}
    return {**env, **manage_module.DEMO_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}


def test_demo_login_prints_a_ready_token_per_role(tmp_path: Path):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    import manage as manage_module
    from liaison.people import service as accounts

    env = _embedded_env(tmp_path)
    tokens = {}
    for role in ("resident", "deputy", "department", "staff", "deputy"):
        result = subprocess.run([sys.executable, "manage.py", "demo-login", role], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert len(result.stdout.strip().splitlines()) == 1 and "curl" in result.stderr
        tokens.setdefault(role, set()).add(token)
    engine = create_engine(env["DATABASE_URL"])
    with Session(engine) as session:
        for role, issued in tokens.items():
            for token in issued:
                principal = accounts.principal_from_token(session, manage_module.DEMO_ENV["SECRET_KEY"], token,
                                                          3600)
                assert principal is not None and principal.role == role
        # Asking twice reuses the demo account.
        deputies = {accounts.principal_from_token(session, manage_module.DEMO_ENV["SECRET_KEY"], t, 3600).account.id
                    for t in tokens["deputy"]}
        assert len(deputies) == 1
    engine.dispose()


def test_demo_login_is_refused_outside_the_demo(settings, fake_wechat):
    result = manage(fake_wechat, "demo-login", "staff")
    assert result.returncode == 1 and "embedded" in result.stderr and not result.stdout.strip()


def test_push_menu_creates_the_official_accounts_menu(settings, fake_wechat):
    from liaison.conversation import menu

    result = manage(fake_wechat, "push-menu")
    assert result.returncode == 0, result.stderr
    created = fake_wechat.menu()
    names = [b["name"] for b in created["button"]]
    leaves = [leaf for b in created["button"] for leaf in (b.get("sub_button") or [b])]
    assert names == ["找代表", "我的诉求", "周三见"]
    assert {"FIND_DEPUTY", "MY_CASES", "RATE", "MEET_WEDNESDAY"} <= set(menu.click_keys(created))
    mini = [leaf for leaf in leaves if leaf["type"] == "miniprogram"]
    assert mini and all(leaf["appid"] == settings.miniprogram_app_id and leaf["pagepath"] for leaf in mini)
