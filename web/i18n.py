"""Flask-Babel for the console: zh-Hant by default, zh-Hans and English, chosen per operator.

Catalogs live in `web/translations/<locale>/LC_MESSAGES/messages.po`. The compiled `.mo` files are
committed, and recompiled at start-up whenever a `.po` is newer, so a fresh clone or an edited
catalog works without a manual `pybabel compile`.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, request, session
from flask_babel import Babel

from intake.constants import LANGUAGES
from web.signed_in import current_operator

TRANSLATIONS = Path(__file__).with_name("translations")
LANGUAGE_NAMES = {"zh-Hant": "繁體中文", "zh-Hans": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh-Hant"


def babel_locale(language: str) -> str:
    """Our language tags (BCP 47, `zh-Hant`) as Babel's locale identifiers (`zh_Hant`)."""
    return language.replace("-", "_")


def compile_catalogs(source: Path = TRANSLATIONS, target: Path | None = None) -> Path:
    """Compile every `.po` whose `.mo` is missing or older; returns the directory holding the `.mo`s.

    Writes next to the `.po` files when that directory is writable, else into `target`.
    """
    out_root = source
    for po_path in sorted(source.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        if target is not None and not _writable(po_path.parent):
            out_root = target
            mo_path = target / po_path.relative_to(source).with_suffix(".mo")
            mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)
    return out_root


def _writable(path: Path) -> bool:
    try:
        probe = path / ".write-probe"
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


def current_language() -> str:
    """The operator's own language; before sign-in, the one picked on the login page."""
    operator = current_operator() if "db" in g else None
    if operator is not None and operator.language in LANGUAGES:
        return str(operator.language)
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return str(chosen)
    best = request.accept_languages.best_match(
        ["zh-Hant", "zh-TW", "zh-HK", "zh-Hans", "zh-CN", "en"]
    )
    if best in ("zh-Hans", "zh-CN"):
        return "zh-Hans"
    if best == "en":
        return "en"
    return DEFAULT_LANGUAGE


def init_babel(app: Flask, fallback_dir: Path) -> None:
    directory = compile_catalogs(TRANSLATIONS, fallback_dir)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(directory)
    app.config["BABEL_DEFAULT_LOCALE"] = babel_locale(DEFAULT_LANGUAGE)
    Babel(app, locale_selector=lambda: babel_locale(current_language()))
