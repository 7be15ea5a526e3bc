"""The caller's language: one key per spoken variety, mapped to Twilio's Say and speech codes.

Keys are `zh-Hant` (Mandarin, Taiwan), `yue` (Cantonese), `en` and, by configuration, `zh-Hans`
(Mandarin, mainland). Templates are looked up by key (`yue` falls back to zh-Hant wording); tickets
and residents store the written language.
"""

from __future__ import annotations

from dataclasses import dataclass

from intake.config import ConfigError, HotlineConfig
from intake.models import Resident

SAY_LANGUAGES = ("cmn-TW", "cmn-CN", "yue-HK", "zh-TW", "zh-CN", "zh-HK", "en-US", "en-GB", "en-AU")
SPEECH_LANGUAGES = (
    "cmn-Hant-TW",
    "cmn-Hans-CN",
    "yue-Hant-HK",
    "zh",
    "zh-TW",
    "en-US",
    "en-GB",
    "en-AU",
)
WRITTEN = {"yue": "zh-Hant", "zh-Hant": "zh-Hant", "zh-Hans": "zh-Hans", "en": "en"}


@dataclass(frozen=True)
class VoiceLanguage:
    key: str
    say: str
    speech: str
    voice: str | None

    @property
    def written(self) -> str:
        return WRITTEN[self.key]


def voice_languages(config: HotlineConfig) -> dict[str, VoiceLanguage]:
    raw = config.voice.get("languages") or {}
    found: dict[str, VoiceLanguage] = {}
    for key, spec in raw.items():
        if key not in WRITTEN or not isinstance(spec, dict):
            raise ConfigError(
                f"voice.languages.{key}: expected one of {sorted(WRITTEN)} with say/speech"
            )
        say, speech = spec.get("say"), spec.get("speech")
        if say not in SAY_LANGUAGES:
            raise ConfigError(
                f"voice.languages.{key}.say: expected one of {SAY_LANGUAGES}, got {say!r}"
            )
        if speech not in SPEECH_LANGUAGES:
            raise ConfigError(
                f"voice.languages.{key}.speech: expected one of {SPEECH_LANGUAGES}, got {speech!r}"
            )
        found[key] = VoiceLanguage(key, say, speech, spec.get("voice") or None)
    if "zh-Hant" not in found:
        raise ConfigError("voice.languages: expected an entry for zh-Hant, the default")
    return found


def menu_languages(config: HotlineConfig) -> list[VoiceLanguage]:
    """The language menu, in order: the first is digit 1."""
    languages = voice_languages(config)
    keys = config.voice.get("menu_languages") or ["zh-Hant", "yue", "en"]
    return [languages[k] for k in keys if k in languages]


def language(config: HotlineConfig, key: str | None) -> VoiceLanguage:
    languages = voice_languages(config)
    return languages.get(key or "", languages["zh-Hant"])


def resident_language(config: HotlineConfig, resident: Resident) -> VoiceLanguage | None:
    """The variety a known resident chose before, else the one matching their written language."""
    return remembered_language(config, resident.spoken_language, resident.language)


def remembered_language(
    config: HotlineConfig, spoken: str | None, written: str | None
) -> VoiceLanguage | None:
    languages = voice_languages(config)
    for key in (spoken, written):
        if key and key in languages:
            return languages[key]
    return None
