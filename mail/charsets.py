"""Charset labels as mail really uses them, and decoding that never raises.

GB-family labels lie (GBK characters under ``gb2312``), so all of them decode as GB18030. Big5
labels decode as Big5-HKSCS, falling back to CP950 per failing byte pair (``€``). Labels Python
lacks get an alias (WHATWG style). Detection (charset-normalizer) runs only when the declared
charset fails or is missing.
"""

from __future__ import annotations

import codecs
import re

GB_FAMILY = frozenset(
    [
        "gb2312",
        "gbk",
        "x-gbk",
        "cp936",
        "ms936",
        "windows-936",
        "gb18030",
        "euc-cn",
        "x-euc-cn",
        "euccn",
        "chinese",
        "csgb2312",
        "gb_2312",
        "gb_2312-80",
        "gb2312-80",
        "iso-ir-58",
        "csiso58gb231280",
        "x-gb2312",
        "gb-2312",
        "cn-gb",
        "csgbk",
        "x-cp936",
        "936",
    ]
)
BIG5_FAMILY = frozenset(
    [
        "big5",
        "big-5",
        "big5-hkscs",
        "big5hkscs",
        "x-big5",
        "cn-big5",
        "csbig5",
        "x-x-big5",
        "cp950",
        "ms950",
        "windows-950",
        "big5-eten",
        "x-windows-950",
        "950",
        "hkscs",
    ]
)
ALIASES: dict[str, str] = {
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "x-sjis": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "x-euc-jp": "euc_jp",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "unicode-1-1-utf-7": "utf-7",
    "x-unicode-1-1-utf-7": "utf-7",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "ansi_x3.4-1968": "utf-8",
    "x-user-defined": "cp1252",
    "utf8": "utf-8",
    "x-utf-8": "utf-8",
    "utf-8-bom": "utf-8-sig",
    "hz-gb-2312": "hz",
    "x-hz": "hz",
}
NOT_CHARSETS = frozenset(
    [
        "punycode",
        "idna",
        "raw-unicode-escape",
        "unicode-escape",
        "raw_unicode_escape",
        "unicode_escape",
        "undefined",
        "rot-13",
        "rot13",
    ]
)
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
DETECT_SAMPLE_BYTES = 64 * 1024


def _cp950_fallback(error: UnicodeError) -> tuple[str, int]:
    """Decode the failing Big5-HKSCS byte pair as CP950, else one replacement character."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    pair = error.object[error.start : error.start + 2]
    try:
        return pair.decode("cp950"), error.start + 2
    except UnicodeDecodeError:
        return "\ufffd", error.start + 1


codecs.register_error("hotline-cp950", _cp950_fallback)


def family(label: str | None) -> str | None:
    """ "gb" or "big5" for Chinese labels (the language hint follows from it), else None."""
    clean = (label or "").strip().strip("\"'").lower()
    if clean in GB_FAMILY:
        return "gb"
    if clean in BIG5_FAMILY:
        return "big5"
    return None


def codec_for(label: str | None) -> str | None:
    """The Python codec to use for a MIME charset label, or None when there is none."""
    clean = (label or "").strip().strip("\"'").lower()
    if not clean or len(clean) > 40:
        return None
    if clean in GB_FAMILY:
        return "gb18030"
    if clean in BIG5_FAMILY:
        return "big5hkscs"
    name = ALIASES.get(clean, clean)
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in NOT_CHARSETS:
        return None  # base64, rot13, punycode, idna…: transforms, not a MIME charset
    return info.name


def strict_decode(data: bytes, codec: str) -> str | None:
    """Decode or None; Big5-HKSCS repairs failing pairs with CP950 and then must be clean."""
    try:
        if codec == "big5hkscs":
            text = data.decode("big5hkscs", errors="hotline-cp950")
            return None if text.count("\ufffd") > max(2, len(text) // 200) else text
        return data.decode(codec)
    except Exception:  # any codec failure (UnicodeError, ValueError, …) means "not this one"
        return None


def detect(data: bytes) -> str | None:
    """charset-normalizer's best guess on a sample, mapped through our own table."""
    from charset_normalizer import from_bytes

    best = from_bytes(data[:DETECT_SAMPLE_BYTES]).best()
    return codec_for(best.encoding) if best is not None else None


def _looks_mislabelled_single_byte(data: bytes, codec: str) -> bool:
    """Western single-byte labels never fail; many high bytes means the label is likely wrong."""
    if codec not in {"cp1252", "latin_1", "iso8859-1", "iso8859-15", "cp1250"}:
        return False
    high = sum(1 for b in data[:DETECT_SAMPLE_BYTES] if b >= 0x80)
    return high >= 8 and high * 5 >= min(len(data), DETECT_SAMPLE_BYTES)


def decode_bytes(data: bytes, label: str | None) -> tuple[str, str]:
    """(text, codec used). Declared charset first, UTF-8, then detection, then replacement."""
    declared = codec_for(label)
    if declared and not _looks_mislabelled_single_byte(data, declared):
        text = strict_decode(data, declared)
        if text is not None:
            return text, declared
    if data.isascii() and b"\x1b" not in data:
        return data.decode("ascii"), "ascii"
    text = strict_decode(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    guessed = detect(data)
    if guessed:
        text = strict_decode(data, guessed)
        if text is not None:
            return text, guessed
    fallback = declared or guessed or "utf-8"
    try:
        return data.decode(fallback, errors="replace"), fallback
    except Exception:  # a codec that fails even with errors="replace" (utf-7 on some input)
        return data.decode("utf-8", errors="replace"), "utf-8"


def recover_header(value: str, hint: str | None = None) -> str:
    """Raw 8-bit header bytes (surrogate-escaped by the parser) decoded with the body's charset,
    UTF-8, or detection."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    return decode_bytes(data, hint)[0]


def _chinese_guess(data: bytes) -> str | None:
    """Big5 or GB18030, as charset-normalizer ranks them (GBK bytes are often valid Big5 too)."""
    from charset_normalizer import from_bytes

    best = from_bytes(data[:DETECT_SAMPLE_BYTES], cp_isolation=["big5", "gb18030"]).best()
    return codec_for(best.encoding) if best is not None else None


def repair_double_encoding(text: str) -> str:
    """Big5/GBK bytes once decoded as Latin-1 and re-saved as UTF-8 (mojibake): undo it when the
    result is clearly Chinese. Real Latin text rarely uses U+0080-U+00BF (C1 controls, ``¤¸±``),
    while Big5/GBK lead bytes land there all the time: that separates ``naïve`` from mojibake."""
    if CJK.search(text) or not re.search(r"[\u00a0-\u00ff]{4}", text):
        return text
    high = [ch for ch in text if ch >= "\u0080"]
    if any(ch > "\u00ff" for ch in high) or sum(ch < "\u00c0" for ch in high) * 5 < len(high):
        return text
    data = text.encode("latin-1")
    for codec in dict.fromkeys(("utf-8", _chinese_guess(data), "big5hkscs", "gb18030")):
        if codec is None:
            continue
        repaired = strict_decode(data, codec)
        if not repaired or "\ufffd" in repaired:
            continue
        if len(CJK.findall(repaired)) * 10 >= 3 * len("".join(repaired.split())):
            return repaired
    return text
