"""The canned replies operators pick from: `intake/templates/<lang>/canned_*.txt`.

Each template's first line is a Jinja comment holding its title in that language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from intake.phrases import TEMPLATE_DIR, render, template_name

_TITLE = re.compile(r"^\{#\s*(.*?)\s*#\}")
_NAME = re.compile(r"canned_[a-z0-9_]{1,60}")


@dataclass(frozen=True)
class CannedReply:
    name: str
    title: str


def canned_replies(language: str) -> list[CannedReply]:
    names = sorted({p.stem for p in TEMPLATE_DIR.glob("*/canned_*.txt")})
    return [CannedReply(name, phrase_title(name, language)) for name in names]


def phrase_title(name: str, language: str) -> str:
    path = TEMPLATE_DIR / template_name(name, language)
    first = path.read_text(encoding="utf-8").splitlines()[0] if path.exists() else ""
    match = _TITLE.match(first)
    return match.group(1) if match else name.removeprefix("canned_").replace("_", " ")


def is_canned(name: str) -> bool:
    """Exactly the name of a canned reply (never a glob or a path)."""
    return _NAME.fullmatch(name) is not None and any(
        (lang_dir / f"{name}.txt").is_file() for lang_dir in TEMPLATE_DIR.iterdir()
    )


def render_canned(name: str, language: str, /, **context: str | None) -> str:
    return render(name, language, **context)
