"""Residents, their units and contact points; CSV import with errors reported by line."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.config import LANGUAGES, HotlineConfig
from intake.models import Building, ContactPoint, Resident, Unit
from intake.phones import normalize_email, normalize_phone

CSV_COLUMNS = ("name", "language", "building", "unit", "phone", "email")


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)


def unit_for(session: Session, building_code: str, label: str) -> Unit:
    building = session.scalar(select(Building).where(Building.code == building_code))
    if building is None:
        building = Building(code=building_code, name=building_code)
        session.add(building)
        session.flush()
    unit = session.scalar(select(Unit).where(Unit.building_id == building.id, Unit.label == label))
    if unit is None:
        unit = Unit(building_id=building.id, label=label)
        session.add(unit)
        session.flush()
    return unit


def add_contact_point(session: Session, resident: Resident, kind: str, value: str) -> ContactPoint:
    existing = session.scalar(
        select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.value == value)
    )
    if existing is not None:
        if existing.resident_id != resident.id:
            raise ValueError(f"{kind} {value} already belongs to another resident")
        return existing
    point = ContactPoint(resident_id=resident.id, kind=kind, value=value)
    session.add(point)
    return point


def import_residents(
    session: Session, rows: list[dict[str, str]], config: HotlineConfig, *, dry_run: bool = False
) -> ImportReport:
    """Validate every row first; import only when no row has an error (all or nothing)."""
    report = ImportReport()
    parsed = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows, start=2):
        name = (row.get("name") or "").strip()
        language = (row.get("language") or "").strip() or config.default_language
        phone_raw = (row.get("phone") or "").strip()
        email_raw = (row.get("email") or "").strip()
        phone = normalize_phone(phone_raw, config.phone_region) if phone_raw else None
        email = normalize_email(email_raw) if email_raw else None
        problems = []
        if not name:
            problems.append("name is empty")
        if language not in LANGUAGES:
            problems.append(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
        if phone_raw and phone is None:
            problems.append(f"phone {phone_raw!r} is not a valid number")
        if email_raw and email is None:
            problems.append(f"email {email_raw!r} is not an address")
        if not phone and not email:
            problems.append("needs a phone or an email")
        if bool((row.get("building") or "").strip()) != bool((row.get("unit") or "").strip()):
            problems.append("building and unit go together")
        for value in (phone, email):
            if value and value in seen:
                problems.append(f"{value} is also on line {seen[value]}")
            elif value:
                seen[value] = index
        for p in problems:
            report.errors.append(RowError(index, p))
        parsed.append(
            (
                index,
                name,
                language,
                (row.get("building") or "").strip(),
                (row.get("unit") or "").strip(),
                phone,
                email,
            )
        )
    if report.errors or dry_run:
        return report
    for index, name, language, building, unit_label, phone, email in parsed:
        resident = None
        for kind, value in (("phone", phone), ("email", email)):
            if value and resident is None:
                resident = session.scalar(
                    select(Resident)
                    .join(ContactPoint)
                    .where(ContactPoint.kind == kind, ContactPoint.value == value)
                )
        if resident is None:
            resident = Resident(name=name, language=language)
            session.add(resident)
            session.flush()
            report.created += 1
        else:
            resident.name, resident.language = name, language
            report.updated += 1
        if building:
            resident.unit_id = unit_for(session, building, unit_label).id
        try:
            for kind, value in (("phone", phone), ("email", email)):
                if value:
                    add_contact_point(session, resident, kind, value)
        except ValueError as exc:
            report.errors.append(RowError(index, str(exc)))
    if report.errors:
        session.rollback()
        report.created = report.updated = 0
    return report
