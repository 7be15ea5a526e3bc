"""The standard phrases (標準用語): one Jinja template per phrase and language, strict about variables.

Templates live in `intake/templates/<language>/<name>.txt` (or `.html`). A spoken variant such as
Cantonese (`yue`) has its own folder when its words differ and falls back to its written language.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

TEMPLATE_DIR = Path(__file__).with_name("templates")
FALLBACKS = {
    "yue": "zh-Hant",
    "cmn-CN": "zh-Hans",
    "zh-HK": "zh-Hant",
    "zh-TW": "zh-Hant",
    "zh-CN": "zh-Hans",
}


@lru_cache(maxsize=4)
def environment(root: str = str(TEMPLATE_DIR)) -> Environment:
    return Environment(
        loader=FileSystemLoader(root),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_name(name: str, language: str) -> str:
    """The template path that exists for `name` in `language`, after fallbacks."""
    env = environment()
    tried = []
    for lang in (language, FALLBACKS.get(language), "zh-Hant"):
        if not lang or lang in tried:
            continue
        tried.append(lang)
        for suffix in ("", ".txt"):
            path = f"{lang}/{name}{suffix}"
            try:
                env.get_template(path)
                return path
            except TemplateNotFound:
                continue
    raise TemplateNotFound(f"{name} in {language}")


def render(phrase: str, language: str, /, **context: Any) -> str:
    return environment().get_template(template_name(phrase, language)).render(**context).strip()


def available(name: str) -> list[str]:
    return sorted(p.parent.name for p in TEMPLATE_DIR.glob(f"*/{name}*"))


def spoken_ref(ref: str, language: str) -> str:
    """A ticket reference read digit by digit, so a voice says "H L 0 0 0 1 2 3", not "one hundred twenty-three"."""
    return render("ref_spoken", language, chars=list(ref.replace("-", "")))
