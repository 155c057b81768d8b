"""A small demo county so a newcomer can talk to the service through the simulator at once."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.people import directory
from liaison.people.models import Department, Deputy, DeputyGrid, Enterprise, Grid, Station

DEPARTMENTS = [
    ("zhujian", "县住房和城乡建设局"), ("shengtai", "市生态环境局县分局"), ("jiaotong", "县交通运输局"),
    ("jiaoyu", "县教育局"), ("renshe", "县人力资源和社会保障局"), ("shichang", "县市场监督管理局"),
    ("weijian", "县卫生健康委员会"),
]
STATIONS = [
    ("S001", "城关镇人大代表联络站", "城关镇人民路12号", "每周三 9:00-11:30"),
    ("S002", "青山乡人大代表之家", "青山乡政府一楼", "每月5日、20日 全天"),
]
GRIDS = [
    ("G001", "幸福里社区第一网格", ["幸福里", "幸福里小区"], "S001"),
    ("G002", "东关社区第二网格", ["东关", "东关小区", "东关街"], "S001"),
    ("G003", "青山村网格", ["青山村", "青山"], "S002"),
    ("G004", "城东工业园企业网格", ["城东工业园"], "S001", "enterprise"),
]
# Registered enterprises of the enterprise grid, with their contact person (企业点单).
ENTERPRISES = [("E001", "恒通机械有限公司", "G004", "周经理")]
DEPUTIES = [
    ("D001", "张建华", "county", "S001", "县人大代表、幸福里社区党委书记", "每周三上午", [("G001", "lead")]),
    ("D002", "李秀英", "township", "S001", "镇人大代表、东关社区居委会主任", "每周五下午", [("G002", "lead"), ("G001", "assist")]),
    ("D003", "王德明", "city", "S002", "市人大代表、青山村党支部书记", "每月5日", [("G003", "lead")]),
    ("D004", "陈志强", "township", "S001", "镇人大代表、恒通机械有限公司工会主席", "每周四下午", [("G004", "lead")]),
    # A deputy without a grid: residents reach them through their own code (一人一码).
    ("D005", "赵敏", "city", "S001", "市人大代表、新能源产业链联络站召集人", "每月10日", []),
]


def seed_demo(session: Session) -> bool:
    """Insert the demo county unless stations already exist; True when it seeded."""
    if session.scalar(select(Station.id).limit(1)) is not None:
        return False
    session.add_all(Department(code=c, name=n) for c, n in DEPARTMENTS)
    stations = {code: Station(code=code, name=name, address=addr, reception_hours=hours)
                for code, name, addr, hours in STATIONS}
    session.add_all(stations.values())
    grids = {code: Grid(code=code, name=name, aliases=aliases, station=stations[st],
                        kind=kind[0] if kind else "community")
             for code, name, aliases, st, *kind in GRIDS}
    session.add_all(grids.values())
    session.add_all(Enterprise(code=code, name=name, grid=grids[grid], contact_name=contact)
                    for code, name, grid, contact in ENTERPRISES)
    for code, name, level, st, duties, hours, links in DEPUTIES:
        deputy = Deputy(code=code, name=name, level=level, station=stations[st], duties=duties,
                        reception_hours=hours)
        session.add(deputy)
        for grid_code, role in links:
            session.add(DeputyGrid(deputy=deputy, grid=grids[grid_code], role=role))
    session.flush()
    directory.invalidate()
    return True
