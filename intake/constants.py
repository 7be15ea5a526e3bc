"""Closed sets of codes the whole service shares, defined once (DOMAIN.md names them)."""

from __future__ import annotations

from typing import Final

# Scripts we write to residents in; zh-Hant is the default.
LANGUAGES: Final = ("zh-Hant", "zh-Hans", "en")
# Spoken varieties at the phone's language menu: the scripts, and Cantonese (`yue`).
SPOKEN_LANGUAGES: Final = ("zh-Hant", "zh-Hans", "en", "yue")
# The written script of each spoken variety.
WRITTEN_LANGUAGE: Final = {"zh-Hant": "zh-Hant", "zh-Hans": "zh-Hans", "en": "en", "yue": "zh-Hant"}

# P1 is the most urgent.
PRIORITIES: Final = ("P1", "P2", "P3", "P4")

# Contacts an operator enters by hand in the console: a resident at the counter, a call taken on
# a desk phone (not through the hotline's Twilio number, which is `voice`), a letter, anything else.
HAND_ENTERED_CHANNELS: Final = ("walk_in", "desk_phone", "letter", "other")
# How a contact reached us, in the order the console and the API list them.
CHANNELS: Final = ("voice", "email", "sms", "web", "open311", "api", *HAND_ENTERED_CHANNELS)

# A ticket's status; the first four are open (someone still owes the resident something).
STATUSES: Final = ("new", "routed", "in_progress", "waiting_resident", "resolved", "closed")
OPEN_STATUSES: Final = ("new", "routed", "in_progress", "waiting_resident")

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
