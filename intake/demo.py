"""Demonstration data: departments, operators, buildings, units and residents with Chinese names."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.auth import hash_password
from intake.config import HotlineConfig
from intake.models import Building, ContactPoint, Operator, Resident, Unit
from intake.tickets import department_by_code, sync_departments

DEMO_PASSWORD = "hotline-demo"
DEMO_OPERATORS = (
    ("admin@hotline.localhost", "系統管理員", "admin", None),
    ("supervisor@hotline.localhost", "陳主管", "supervisor", "customer_service"),
    ("operator@hotline.localhost", "林接線員", "operator", "customer_service"),
    ("engineering@hotline.localhost", "王工程師", "department", "engineering"),
    ("billing@hotline.localhost", "張會計", "department", "billing"),
)
DEMO_BUILDINGS = (("A", "翠林苑A座"), ("B", "翠林苑B座"), ("C", "海景花園"))
DEMO_RESIDENTS = (
    ("陳大文", "zh-Hant", "A", "12F-1", "+886912000001", "chan.taiman@example.com"),
    ("李小梅", "zh-Hant", "A", "3F-2", "+886912000002", "lee.siumui@example.com"),
    ("王建国", "zh-Hans", "B", "8F-5", "+8613800138000", "wang.jianguo@example.cn"),
    ("黃志強", "zh-Hant", "B", "15F-3", "+85291234567", "wong.chikeung@example.hk"),
    ("Emily Carter", "en", "C", "21F-A", "+886912000005", "emily.carter@example.com"),
    ("張美玲", "zh-Hant", "C", "6F-B", "+886912000006", "mayling.chang@example.com"),
)


def seed_demo(session: Session, config: HotlineConfig) -> dict[str, int]:
    """Idempotent: running it twice adds nothing the second time."""
    sync_departments(session, config)
    added = {"operators": 0, "buildings": 0, "units": 0, "residents": 0}
    for email, name, role, dept in DEMO_OPERATORS:
        if session.scalar(select(Operator).where(Operator.email == email)) is None:
            session.add(
                Operator(
                    email=email,
                    name=name,
                    role=role,
                    password_hash=hash_password(DEMO_PASSWORD),
                    department_id=department_by_code(session, dept, config).id if dept else None,
                    language="zh-Hant",
                )
            )
            added["operators"] += 1
    buildings = {}
    for code, name in DEMO_BUILDINGS:
        building = session.scalar(select(Building).where(Building.code == code))
        if building is None:
            building = Building(code=code, name=name)
            session.add(building)
            session.flush()
            added["buildings"] += 1
        buildings[code] = building
    for name, language, bcode, label, phone, email in DEMO_RESIDENTS:
        if session.scalar(
            select(ContactPoint).where(ContactPoint.kind == "phone", ContactPoint.value == phone)
        ):
            continue
        unit = session.scalar(
            select(Unit).where(Unit.building_id == buildings[bcode].id, Unit.label == label)
        )
        if unit is None:
            unit = Unit(building_id=buildings[bcode].id, label=label)
            session.add(unit)
            session.flush()
            added["units"] += 1
        resident = Resident(name=name, language=language, unit_id=unit.id)
        session.add(resident)
        session.flush()
        session.add_all(
            [
                ContactPoint(resident_id=resident.id, kind="phone", value=phone),
                ContactPoint(resident_id=resident.id, kind="email", value=email),
            ]
        )
        added["residents"] += 1
    return added
