from __future__ import annotations

from sqlalchemy import func, select

from intake.models import Building, ContactPoint, Resident, Unit
from intake.residents import import_residents


def _row(name: str, phone: str = "", email: str = "", building: str = "", unit: str = "") -> dict:
    return {
        "name": name,
        "language": "zh-Hant",
        "building": building,
        "unit": unit,
        "phone": phone,
        "email": email,
    }


def _count(sessions, model) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_an_import_creates_then_updates_by_contact_point(settings, sessions) -> None:  # type: ignore[no-untyped-def]
    rows = [
        _row("陳大文", "0912000001", "chan@example.com", "A", "5F-1"),
        _row("李美玲", "0912000002", building="A", unit="5F-2"),
        _row("Ann Lee", email="ann@example.com", building="B", unit="1F"),
    ]
    with sessions() as session:
        report = import_residents(session, rows, settings.config)
        session.commit()
    assert (report.created, report.updated, report.errors) == (3, 0, [])
    assert (_count(sessions, Building), _count(sessions, Unit)) == (2, 3)

    moved = [_row("陳大文先生", "0912000001", building="B", unit="1F"), _row("New", "0912000003")]
    with sessions() as session:
        report = import_residents(session, moved, settings.config)
        session.commit()
    assert (report.created, report.updated) == (1, 1)
    with sessions() as session:
        chan = session.scalar(
            select(Resident).join(ContactPoint).where(ContactPoint.value == "+886912000001")
        )
        assert chan is not None and chan.name == "陳大文先生"
        assert chan.unit is not None and chan.unit.label == "1F"
        assert len(chan.contact_points) == 2, "the email stays; the phone is not added twice"
    assert (_count(sessions, Resident), _count(sessions, Unit)) == (4, 3)


def test_the_dry_run_finds_contact_points_owned_by_two_residents(settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """A row whose phone is one resident's and email another's: the preview says so by line,
    and the import writes nothing."""
    with sessions() as session:
        import_residents(
            session,
            [_row("陳大文", "0912000001"), _row("李美玲", email="lee@example.com")],
            settings.config,
        )
        session.commit()
    clash = [_row("Someone", "0912000009"), _row("陳大文", "0912000001", "lee@example.com")]
    for dry_run in (True, False):
        with sessions() as session:
            report = import_residents(session, clash, settings.config, dry_run=dry_run)
            session.rollback()
        assert [(e.line, "another resident" in e.message) for e in report.errors] == [(3, True)]
        assert (report.created, report.updated) == (0, 0)
    assert _count(sessions, Resident) == 2
