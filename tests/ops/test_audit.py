"""The audit log: sign-ins, operator and role changes, exports, token creation are recorded with who,
when and from where; administrators read it in their language; nobody can change it."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update

from intake.audit import AppendOnly, purge_before, record
from intake.cli import main
from intake.clock import utcnow
from intake.models import AuditEntry
from tests.web.console_helpers import ADMIN, SUPERVISOR, csrf, login, make_client

NEWBIE = "newbie@hotline.localhost"


def entries(sessions) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_what_admins_and_supervisors_do_is_recorded_and_shown_to_admins(demo, sessions):
    intruder = make_client()
    assert login(intruder, ADMIN, "wrong-password").status_code == 401
    admin = make_client()
    assert login(admin, ADMIN).status_code in (302, 303)
    token = csrf(admin, "/admin/operators")
    form = {"email": NEWBIE, "name": "新同事", "role": "operator", "password": "long-enough-1"}
    admin.post("/admin/operators", data={**form, "csrf_token": token})
    newbie = next(e for e in entries(sessions) if e.action == "operator_created")
    with sessions() as s:
        from intake.models import Operator

        newbie_id = s.scalar(select(Operator.id).where(Operator.email == NEWBIE))
    token = csrf(admin, "/admin/operators")
    admin.post(
        f"/admin/operators/{newbie_id}",
        data={"role": "supervisor", "language": "zh-Hant", "active": "1", "csrf_token": token},
    )
    supervisor = make_client()
    login(supervisor, SUPERVISOR)
    assert supervisor.get("/reports/volume.csv").status_code == 200
    result = CliRunner().invoke(
        main, ["api-token", "create", "--name", "crm", "--role", "readonly"]
    )
    assert result.exit_code == 0, result.output

    log = entries(sessions)
    actions = [(e.action, e.actor, e.target) for e in log]
    assert ("sign_in_failed", ADMIN, None) in actions
    assert ("sign_in", ADMIN, None) in actions
    assert ("operator_created", ADMIN, NEWBIE) in actions
    assert ("operator_changed", ADMIN, NEWBIE) in actions
    assert ("report_exported", SUPERVISOR, "volume") in actions
    token_entry = next(e for e in log if e.action == "api_token_created")
    assert token_entry.target == "crm" and token_entry.actor_role == "cli"
    assert token_entry.source == "command line"
    changed = next(e for e in log if e.action == "operator_changed")
    assert changed.detail["changed"] == {"role": ["operator", "supervisor"]}
    assert newbie.source == "127.0.0.1" and newbie.actor_role == "admin"
    assert all(abs(e.at - utcnow()) < timedelta(minutes=5) for e in log)

    assert supervisor.get("/admin/audit/").status_code == 403
    page = admin.get("/admin/audit/")
    assert page.status_code == 200
    shown = html.unescape(page.get_data(as_text=True))
    for words in (
        "稽核紀錄",
        "登入失敗",
        "新增客服人員",
        "角色：接線員",
        "修改客服人員",
        "角色：接線員 → 主管",
        "匯出報表",
        "各渠道每日工單量",
        "角色：API：唯讀",
        "命令列",
    ):
        assert words in shown, words
    rows = shown.split("<tbody>")[1].split("</tbody>")[0]
    rows = re.sub(r' data-action="[a-z_]+"', "", rows)
    assert not any(code in rows for code in ("operator_changed", "volume", "readonly", "cli"))
    only_failures = html.unescape(
        admin.get("/admin/audit/?action=sign_in_failed").get_data(as_text=True)
    )
    assert only_failures.count('data-action="sign_in_failed"') == 1
    assert 'data-action="sign_in"' not in only_failures
    assert admin.get("/admin/audit/?day=not-a-day&before=x").status_code == 200


def test_an_entry_cannot_be_changed_or_deleted_only_purged_by_retention(db_url, sessions):
    with sessions() as s:
        old = record(s, "sign_in", actor="a@hotline.localhost", source="10.0.0.1")
        old.at = utcnow() - timedelta(days=400)
        record(s, "sign_in", actor="b@hotline.localhost", source="10.0.0.2")
        s.commit()
    with sessions() as s:
        entry = s.scalars(select(AuditEntry)).first()
        entry.actor = "someone-else"
        with pytest.raises(AppendOnly):
            s.commit()
    with sessions() as s:
        s.delete(s.scalars(select(AuditEntry)).first())
        with pytest.raises(AppendOnly):
            s.commit()
    with sessions() as s, pytest.raises(AppendOnly):
        s.execute(update(AuditEntry).values(actor="x"))
    if db_url.startswith("postgresql"):
        with sessions() as s, pytest.raises(Exception, match="append-only"):
            s.execute(text("DELETE FROM audit_log"))
    with sessions() as s, pytest.raises(Exception, match="append-only"):
        s.execute(text("UPDATE audit_log SET actor = 'x'"))
    with sessions() as s:
        assert purge_before(s, utcnow() - timedelta(days=365)) == 1
        s.commit()
    assert [e.actor for e in entries(sessions)] == ["b@hotline.localhost"]


def test_configuration_and_routing_changes_are_recorded_with_before_and_after(
    demo, sessions, monkeypatch, tmp_path
):
    import yaml

    from intake.config import DEFAULT_CONFIG_PATH, get_settings
    from intake.config_audit import note_changes
    from intake.phrases import TEMPLATE_DIR

    def hotline(*args: str) -> None:
        get_settings.cache_clear()
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code == 0, result.output

    config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    config_file = tmp_path / "hotline.yaml"
    config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config_file))
    hotline("init-db")  # the first snapshot: nothing to compare with
    hotline("init-db")
    assert [e.action for e in entries(sessions)] == []

    # The YAML is edited: engineering's on-call order, where repairs go, a new rule first, alert
    # contacts added; and the public address the deployment runs at changes.
    engineering = next(d for d in config["departments"] if d["code"] == "engineering")
    engineering["on_call"] = ["+886912345002", "+886900000001"]
    repairs = next(r for r in config["routing_rules"] if r["name"] == "repairs")
    repairs["then"] = {"department": "management", "sla_profile": "standard"}
    config["routing_rules"].insert(
        0,
        {
            "name": "lobby",
            "names": {"zh-Hant": "大堂事務", "zh-Hans": "大堂事务", "en": "lobby"},
            "when": {"keywords": ["大堂"]},
            "then": {"department": "management"},
        },
    )
    config["alerts"] = {"emails": ["noc@example.com"]}
    config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://hotline.example.net")
    hotline("init-db")
    hotline("init-db")  # unchanged since: no second entry
    (change,) = [e for e in entries(sessions) if e.action == "config_changed"]
    assert change.actor_role == "cli" and change.source == "command line"
    assert change.target == str(config_file)
    items = {c["item"]: c for c in change.detail["changes"]}
    assert items["department:engineering"]["before"]["on_call"] == [
        "+886912345001",
        "+886912345002",
    ]
    assert items["routing_rule:lobby"]["before"] is None
    assert items["setting:PUBLIC_BASE_URL"] == {
        "item": "setting:PUBLIC_BASE_URL",
        "before": "https://hotline.example.com",
        "after": "https://hotline.example.net",
    }

    # A standard phrase edited in a deployment's template folder.
    phrases = tmp_path / "templates"
    for path in TEMPLATE_DIR.glob("zh-Hant/ack_*"):
        (phrases / "zh-Hant").mkdir(parents=True, exist_ok=True)
        (phrases / "zh-Hant" / path.name).write_bytes(path.read_bytes())
    with sessions() as s:
        s.execute(text("DELETE FROM config_snapshot"))
        note_changes(
            s,
            get_settings(),
            actor="ops@host",
            role="cli",
            source="command line",
            template_root=phrases,
        )
        s.commit()
    edited = sorted((phrases / "zh-Hant").iterdir())[0]
    edited.write_text("您好,我們已收到您的來信,稍後回覆。", encoding="utf-8")
    with sessions() as s:
        note_changes(
            s,
            get_settings(),
            actor="ops@host",
            role="cli",
            source="command line",
            template_root=phrases,
        )
        s.commit()

    # Operators' roles and details, and API tokens, from the command line and the console.
    hotline(
        "create-operator", "--email", NEWBIE, "--password", "long-enough-1", "--role", "operator"
    )
    hotline(
        "create-operator",
        "--email",
        NEWBIE,
        "--password",
        "long-enough-2",
        "--role",
        "department",
        "--department",
        "engineering",
    )
    hotline("api-token", "create", "--name", "crm", "--role", "readonly")
    hotline("api-token", "revoke", "--name", "crm")
    admin = make_client()
    login(admin, ADMIN)
    with sessions() as s:
        from intake.models import Operator

        newbie_id = s.scalar(select(Operator.id).where(Operator.email == NEWBIE))
    token = csrf(admin, "/admin/operators")
    admin.post(
        f"/admin/operators/{newbie_id}",
        data={
            "role": "department",
            "department": "engineering",
            "language": "en",
            "phone": "0912 000 111",
            "password": "long-enough-3",
            "active": "1",
            "csrf_token": token,
        },
    )
    changed = [e for e in entries(sessions) if e.action == "operator_changed"]
    assert changed[0].detail["changed"] == {
        "role": ["operator", "department"],
        "department": [None, "engineering"],
    }
    assert changed[1].detail["changed"] == {
        "language": ["zh-Hant", "en"],
        "phone": [None, "+886912000111"],
    }
    assert changed[1].detail["password_changed"] is True
    assert ("api_token_revoked", "crm") in [(e.action, e.target) for e in entries(sessions)]

    shown = html.unescape(admin.get("/admin/audit/").get_data(as_text=True))
    for words in (
        "修改設定",
        "部門「工程維修部」值班順序：+886912345001、+886912345002 → +886912345002、+886900000001",
        "分派規則「一般報修」分派去向或優先級已修改、順序：4 → 5",
        "分派規則「大堂事務」已新增",
        "警示聯絡人已新增",
        "對外網址（Twilio 簽章）：https://hotline.example.com → https://hotline.example.net",
        "（繁體中文）已修改",
        "撤銷 API 權杖",
        "部門：— → 工程維修部",
        "語言：繁體中文 → English",
        "電話：— → +886912000111",
        "已更改密碼",
    ):
        assert words in shown, words
    rows = re.sub(r' data-action="[a-z_]+"', "", shown.split("<tbody>")[1].split("</tbody>")[0])
    for code in ("routing_rule", "department:", "on_call", "PUBLIC_BASE_URL", "section:", "alerts"):
        assert code not in rows, code
