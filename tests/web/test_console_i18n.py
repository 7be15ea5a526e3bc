"""Languages: zh-Hant by default, zh-Hans and English complete, chosen per operator."""

from __future__ import annotations

import shutil

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from sqlalchemy import select

from intake.models import Operator
from tests.web.console_helpers import login, make_client, post, text
from web.i18n import TRANSLATIONS, compile_catalogs


def test_every_message_is_translated_in_every_language():
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    ids = {m.id for m in template if m.id}
    assert len(ids) > 200
    for locale in ("zh_Hant", "zh_Hans", "en"):
        catalog = read_po((TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").open("rb"))
        translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
        assert ids <= translated, (locale, sorted(ids - translated)[:5])


def test_the_committed_mo_files_match_the_po_files(tmp_path):
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, copy)
    for mo in copy.glob("*/LC_MESSAGES/messages.mo"):
        mo.unlink()
    compile_catalogs(copy)
    for locale in ("zh_Hant", "zh_Hans", "en"):
        fresh = read_mo((copy / locale / "LC_MESSAGES" / "messages.mo").open("rb"))
        shipped = read_mo((TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo").open("rb"))
        assert {m.id: m.string for m in fresh} == {m.id: m.string for m in shipped}


def test_a_missing_mo_is_compiled_at_start_up(tmp_path):
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, copy)
    (copy / "en" / "LC_MESSAGES" / "messages.mo").unlink()
    compile_catalogs(copy)
    assert (copy / "en" / "LC_MESSAGES" / "messages.mo").stat().st_size > 1000


def test_the_console_speaks_each_operators_language(demo, sessions):
    client = make_client()
    assert "登入" in text(client.get("/login"))
    assert "Sign in" in text(client.get("/login?lang=en"))
    assert "登录" in text(client.get("/login?lang=zh-Hans"))
    login(client)
    page = text(client.get("/"))
    assert "工單佇列" in page and 'lang="zh-Hant"' in page
    response = post(client, "/language", {"language": "en", "next": "/"})
    assert response.status_code == 302
    page = text(client.get("/"))
    assert "Queue" in page and "工單佇列" not in page and 'lang="en"' in page
    post(client, "/language", {"language": "zh-Hans", "next": "/"})
    assert "工单队列" in text(client.get("/"))
    with sessions() as session:
        assert (
            session.scalar(
                select(Operator.language).where(Operator.email == "operator@hotline.localhost")
            )
            == "zh-Hans"
        )
    other = make_client()
    login(other, email="supervisor@hotline.localhost")
    assert "工單佇列" in text(other.get("/"))


def test_an_unknown_language_is_refused(demo):
    client = make_client()
    login(client)
    assert post(client, "/language", {"language": "fr"}).status_code == 400
