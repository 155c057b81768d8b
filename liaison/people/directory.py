"""A read-only, briefly cached snapshot of the registry (grids, deputies, departments) for routing.

Every incoming message needs the grid names to look for, the grid's lead deputy and the department
for a category. They change when staff edit the registry, rarely; reading them from the database
per message cost more than everything else in the webhook. The snapshot is reloaded after
`TTL_SECONDS`, and at once in the process that calls `invalidate()` (the registry services do).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.core import tenant
from liaison.people.models import DEPUTY_LEVEL_NAMES, Department, Deputy, DeputyGrid, Enterprise, Grid

TTL_SECONDS = 30.0


@dataclass(frozen=True)
class DeputyInfo:
    id: int
    name: str
    level: str

    @property
    def label(self) -> str:
        """How a resident sees their handler: 网格代表 张建华（县人大代表）."""
        return f"网格代表 {self.name}（{DEPUTY_LEVEL_NAMES.get(self.level, '')}人大代表）"


@dataclass(frozen=True)
class DepartmentInfo:
    id: int
    code: str
    name: str


@dataclass
class Directory:
    loaded_at: float
    url: tuple  # (database URL, tenant scope key): what the snapshot is of
    grid_names: list[tuple[str, int]] = field(default_factory=list)  # longest first
    lead_by_grid: dict[int, DeputyInfo] = field(default_factory=dict)
    deputies: dict[int, DeputyInfo] = field(default_factory=dict)
    departments_by_code: dict[str, DepartmentInfo] = field(default_factory=dict)
    departments: dict[int, DepartmentInfo] = field(default_factory=dict)

    def grid_in_text(self, text: str) -> int | None:
        """The grid whose name or alias (a community name) appears in `text`, longest match first."""
        for name, grid_id in self.grid_names:
            if name in text:
                return grid_id
        return None


_lock = threading.Lock()
_snapshots: dict[tuple, Directory] = {}  # per (database URL, tenant scope key)


def _load(session: Session, url: tuple) -> Directory:
    directory = Directory(loaded_at=time.monotonic(), url=url)
    for grid_id, name, aliases in session.execute(select(Grid.id, Grid.name, Grid.aliases)):
        directory.grid_names += [(n, grid_id) for n in [name, *(aliases or [])] if n]
    # 企业点单: an enterprise named in a message is in its enterprise grid.
    for name, grid_id in session.execute(select(Enterprise.name, Enterprise.grid_id)):
        directory.grid_names.append((name, grid_id))
    directory.grid_names.sort(key=lambda item: -len(item[0]))
    for deputy_id, name, level in session.execute(select(Deputy.id, Deputy.name, Deputy.level)):
        directory.deputies[deputy_id] = DeputyInfo(deputy_id, name, level)
    links = session.execute(select(DeputyGrid.grid_id, DeputyGrid.deputy_id, DeputyGrid.role)
                            .order_by(DeputyGrid.grid_id, DeputyGrid.role != "lead",
                                      DeputyGrid.deputy_id)).all()
    for grid_id, deputy_id, _role in links:
        directory.lead_by_grid.setdefault(grid_id, directory.deputies[deputy_id])
    for dept_id, code, name in session.execute(select(Department.id, Department.code, Department.name)):
        info = DepartmentInfo(dept_id, code, name)
        directory.departments[dept_id] = directory.departments_by_code[code] = info
    return directory


def get(session: Session) -> Directory:
    """The current snapshot for the session's database and county, reloaded when older than TTL_SECONDS."""
    # One snapshot per database and tenant scope: another county's registry is another snapshot.
    # (A tuple key: rendering the URL as text cost more than the rest of a call, made ~4× a message.)
    url = (session.get_bind().url, tenant.of(session).key)
    current = _snapshots.get(url)
    if current is not None and time.monotonic() - current.loaded_at < TTL_SECONDS:
        return current
    with _lock:
        current = _snapshots.get(url)
        if current is None or time.monotonic() - current.loaded_at >= TTL_SECONDS:
            current = _snapshots[url] = _load(session, url)
        return current


def invalidate() -> None:
    """Forget the snapshots (call after changing grids, deputies or departments)."""
    _snapshots.clear()
