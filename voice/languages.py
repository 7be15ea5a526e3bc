"""The caller's language: one key per spoken variety, mapped to Twilio's Say and speech codes.

Keys are `zh-Hant` (Mandarin, Taiwan), `yue` (Cantonese), `en` and, by configuration, `zh-Hans`
(Mandarin, mainland). Templates are looked up by key (`yue` has its own words for everything a
caller hears); tickets store the written language.

A resident has both: `Resident.spoken_language` is the variety they chose at the language menu (a
key here), `Resident.language` the script we write to them in (zh-Hant, zh-Hans, en). The script is
only a guess at the spoken variety, and for Traditional Chinese from Hong Kong or Macau no guess is
made (Cantonese or Mandarin?): such a caller is asked once, and their choice is remembered.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from intake.config import HotlineConfig
from intake.constants import WRITTEN_LANGUAGE
from intake.models import Resident

# The spoken variety a written script suggests when the resident never chose one.
SPOKEN_FOR_SCRIPT = {"zh-Hant": "zh-Hant", "zh-Hans": "zh-Hans", "en": "en"}
# Where Traditional Chinese is as likely to be read by a Cantonese speaker as by a Mandarin one.
CANTONESE_REGIONS = frozenset({"HK", "MO"})
# voice_* templates written on the ticket for operators, in the written language; never said to a
# caller, so they have no spoken (`yue`) wording.
RECORD_PHRASES = frozenset(
    {
        "voice_emergency_text",
        "voice_hung_up_recording",
        "voice_missed_call_subject",
        "voice_missed_call_text",
        "voice_no_description",
        "voice_recording_text",
        "voice_virtual_hold_text",
    }
)


@dataclass(frozen=True)
class VoiceLanguage:
    key: str
    say: str
    speech: str
    voice: str | None

    @property
    def written(self) -> str:
        return WRITTEN_LANGUAGE[self.key]


def voice_languages(config: HotlineConfig) -> dict[str, VoiceLanguage]:
    """Each configured spoken language with its Say and speech codes (`voice.languages`)."""
    return {
        key: VoiceLanguage(key, spec.say, spec.speech, spec.voice or None)
        for key, spec in config.voice.languages.items()
    }


def menu_languages(config: HotlineConfig) -> list[VoiceLanguage]:
    """The language menu, in order: the first is digit 1."""
    languages = voice_languages(config)
    return [languages[k] for k in config.voice.menu_languages if k in languages]


def language(config: HotlineConfig, key: str | None) -> VoiceLanguage:
    languages = voice_languages(config)
    return languages.get(key or "", languages["zh-Hant"])


def resident_language(
    config: HotlineConfig, resident: Resident, phone: str | None = None
) -> VoiceLanguage | None:
    """The variety a known resident chose before, else the one their written language suggests."""
    return remembered_language(config, resident.spoken_language, resident.language, phone)


def remembered_language(
    config: HotlineConfig, spoken: str | None, written: str | None, phone: str | None = None
) -> VoiceLanguage | None:
    """The resident's own choice; else a guess from their script; None when the menu must ask.

    The written script is not a spoken choice: zh-Hant is the script of Taiwan's Mandarin speakers
    and of Hong Kong's Cantonese speakers alike. Read as Mandarin, it greeted every Hong Kong
    resident in Mandarin and skipped the menu where they could have said 廣東話.
    """
    languages = voice_languages(config)
    if spoken and spoken in languages:
        return languages[spoken]
    guess = SPOKEN_FOR_SCRIPT.get(written or "")
    if guess is None or guess not in languages:
        return None
    if guess == "zh-Hant" and _cantonese_offered(config) and region_of(phone) in CANTONESE_REGIONS:
        return None
    return languages[guess]


def _cantonese_offered(config: HotlineConfig) -> bool:
    return any(choice.key == "yue" for choice in menu_languages(config))


def region_of(phone: str | None) -> str | None:
    """The ISO country of an E.164 number ("HK" for +852...), None when unknown."""
    if not phone:
        return None
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None
