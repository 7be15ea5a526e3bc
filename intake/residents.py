"""Residents, their units and contact points; CSV import with errors reported by line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.config import HotlineConfig
from intake.constants import LANGUAGES
from intake.models import Building, ContactPoint, Resident, Unit
from intake.phones import normalize_email, normalize_phone

CSV_COLUMNS = ("name", "language", "building", "unit", "phone", "email")


@dataclass(frozen=True)
class RowError:
    """One problem on one CSV line: `code` and `params` for a translated reason (the console's),
    `message` in English (the CLI's)."""

    line: int
    message: str
    code: str = ""
    params: tuple[tuple[str, str], ...] = ()


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
    """Validate every row first (the dry run finds every error the import would); import only
    when no row has an error (all or nothing).

    Contact points, residents, buildings and units are read in batches up front and new rows
    written in batches: one query per row made an import of 10,000 residents take 25 s, past a
    web worker's timeout."""
    report = ImportReport()
    parsed: list[_Row] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows, start=2):
        name = (row.get("name") or "").strip()
        language = (row.get("language") or "").strip() or config.default_language
        phone_raw = (row.get("phone") or "").strip()
        email_raw = (row.get("email") or "").strip()
        phone = normalize_phone(phone_raw, config.phone_region) if phone_raw else None
        email = normalize_email(email_raw) if email_raw else None
        problems: list[tuple[str, str, dict[str, str]]] = []
        if not name:
            problems.append(("name_empty", "name is empty", {}))
        if language not in LANGUAGES:
            allowed = ", ".join(LANGUAGES)
            problems.append(
                (
                    "language_unknown",
                    f"language {language!r} is not one of {allowed}",
                    {"value": language, "allowed": allowed},
                )
            )
        if phone_raw and phone is None:
            problems.append(
                (
                    "phone_invalid",
                    f"phone {phone_raw!r} is not a valid number",
                    {"value": phone_raw},
                )
            )
        if email_raw and email is None:
            problems.append(
                ("email_invalid", f"email {email_raw!r} is not an address", {"value": email_raw})
            )
        if not phone and not email:
            problems.append(("contact_missing", "needs a phone or an email", {}))
        if bool((row.get("building") or "").strip()) != bool((row.get("unit") or "").strip()):
            problems.append(("building_unit_pair", "building and unit go together", {}))
        for value in (phone, email):
            if value and value in seen:
                problems.append(
                    (
                        "duplicate",
                        f"{value} is also on line {seen[value]}",
                        {"value": value, "line": str(seen[value])},
                    )
                )
            elif value:
                seen[value] = index
        for code, message, params in problems:
            report.errors.append(RowError(index, message, code, tuple(params.items())))
        building = (row.get("building") or "").strip()
        unit = (row.get("unit") or "").strip()
        parsed.append(_Row(index, name, language, building, unit, phone, email))
    owners = _owners(session, [r.phone for r in parsed if r.phone], "phone")
    owners.update(_owners(session, [r.email for r in parsed if r.email], "email"))
    for r in parsed:
        by_phone = owners.get(("phone", r.phone))
        by_email = owners.get(("email", r.email))
        if by_phone is not None and by_email is not None and by_phone != by_email:
            report.errors.append(
                RowError(
                    r.line,
                    f"email {r.email} already belongs to another resident",
                    "email_taken",
                    (("value", r.email or ""),),
                )
            )
    if report.errors or dry_run:
        return report
    _apply(session, parsed, owners, report)
    return report


@dataclass(frozen=True)
class _Row:
    line: int
    name: str
    language: str
    building: str
    unit: str
    phone: str | None
    email: str | None


BATCH = 500


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), BATCH):
        yield values[start : start + BATCH]


def _owners(session: Session, values: list[str], kind: str) -> dict[tuple[str, str | None], int]:
    """Who already owns each of these contact points."""
    owners: dict[tuple[str, str | None], int] = {}
    for chunk in _chunks(values):
        for value, resident_id in session.execute(
            select(ContactPoint.value, ContactPoint.resident_id).where(
                ContactPoint.kind == kind, ContactPoint.value.in_(chunk)
            )
        ):
            owners[(kind, value)] = resident_id
    return owners


def _apply(
    session: Session,
    parsed: list[_Row],
    owners: dict[tuple[str, str | None], int],
    report: ImportReport,
) -> None:
    units = _units(session, {(r.building, r.unit) for r in parsed if r.building})
    known_ids = sorted(set(owners.values()))
    residents = {
        resident.id: resident
        for chunk in _chunks(known_ids)
        for resident in session.scalars(select(Resident).where(Resident.id.in_(chunk)))
    }
    rows_of: list[tuple[_Row, Resident]] = []
    for r in parsed:
        owner = owners.get(("phone", r.phone)) or owners.get(("email", r.email))
        if owner is not None:
            resident = residents[owner]
            resident.name, resident.language = r.name, r.language
            report.updated += 1
        else:
            resident = Resident(name=r.name, language=r.language)
            session.add(resident)
            report.created += 1
        if r.building:
            resident.unit_id = units[(r.building, r.unit)]
        rows_of.append((r, resident))
    session.flush()  # new residents get their ids, in batched INSERTs
    session.add_all(
        ContactPoint(resident_id=resident.id, kind=kind, value=value)
        for r, resident in rows_of
        for kind, value in (("phone", r.phone), ("email", r.email))
        if value and (kind, value) not in owners
    )
    session.flush()


def _units(session: Session, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The unit id of each (building code, unit label), creating what is missing."""
    codes = sorted({code for code, _ in wanted})
    buildings = {
        b.code: b
        for chunk in _chunks(codes)
        for b in session.scalars(select(Building).where(Building.code.in_(chunk)))
    }
    for code in codes:
        if code not in buildings:
            buildings[code] = Building(code=code, name=code)
            session.add(buildings[code])
    session.flush()
    ids = {b.id: code for code, b in buildings.items()}
    found: dict[tuple[str, str], int] = {}
    for chunk in _chunks(sorted(ids)):
        for unit_id, building_id, label in session.execute(
            select(Unit.id, Unit.building_id, Unit.label).where(Unit.building_id.in_(chunk))
        ):
            found[(ids[building_id], label)] = unit_id
    missing = [
        Unit(building_id=buildings[code].id, label=label)
        for code, label in sorted(wanted)
        if (code, label) not in found
    ]
    session.add_all(missing)
    session.flush()
    for unit in missing:
        found[(ids[unit.building_id], unit.label)] = unit.id
    return found
