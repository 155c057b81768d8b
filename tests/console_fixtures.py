"""Helpers for the console tests: accounts with passwords, cases in two stations, a signed-in client."""
from __future__ import annotations

import re

from sqlalchemy import select

from liaison.case import service as cases
from liaison.console import auth
from liaison.core import db
from liaison.people import service as people
from liaison.people.models import Department, Deputy, Grid, Resident, Station

PASSWORD = "console password 1"


def make_account(role: str, name: str, *, station: str | None = None, deputy: str | None = None,
                 login: str) -> str:
    """An account with a console password; returns its public id."""
    with db.session_scope() as session:
        station_row = session.scalar(select(Station).where(Station.code == station)) if station else None
        deputy_row = session.scalar(select(Deputy).where(Deputy.code == deputy)) if deputy else None
        account, _ = people.create_account(session, role, name, station=station_row, deputy=deputy_row)
        _credential, token = auth.issue_password_link(session, account, login=login)
        auth.redeem_password_link(session, token, PASSWORD)
        return account.public_id


def make_department_account(name: str, code: str, *, login: str) -> str:
    """A department handler's account with a console password; returns its public id."""
    with db.session_scope() as session:
        department = session.scalar(select(Department).where(Department.code == code))
        account, _ = people.create_account(session, "department", name, department=department)
        _credential, token = auth.issue_password_link(session, account, login=login)
        auth.redeem_password_link(session, token, PASSWORD)
        return account.public_id


def make_case(grid_code: str, text: str = "幸福里小区3号楼门口的路灯坏了", openid: str | None = None) -> tuple[str, str]:
    """A fresh case in the grid; returns (public id, number)."""
    with db.session_scope() as session:
        grid = session.scalar(select(Grid).where(Grid.code == grid_code))
        resident = Resident(oa_openid=openid or f"o_console_{grid_code}_{abs(hash(text)) % 10**8}",
                            grid_id=grid.id)
        session.add(resident)
        session.flush()
        case = cases.open_case(session, resident, text, grid=grid)
        return case.public_id, case.number


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def sign_in(client, login: str, password: str = PASSWORD):
    page = client.get("/console/login")
    return client.post("/console/login", data={"csrf_token": csrf_token(page.text), "login": login,
                                                "password": password})
