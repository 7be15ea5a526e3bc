"""A small TwiML checker for the voice tests: what Twilio would reject or silently misplay.

Allow-lists written by hand from Twilio's TwiML reference (docs and twilio-node's generated
attribute types): verbs, their children and attributes, language codes, and an explicit `action`
on every <Gather> and <Record> (the default, the current URL, loops).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

SAY_LANGUAGES = {"cmn-TW", "cmn-CN", "yue-HK", "zh-TW", "zh-CN", "zh-HK", "en-US", "en-GB", "en-AU"}
SPEECH_LANGUAGES = {
    "cmn-Hant-TW",
    "cmn-Hans-CN",
    "yue-Hant-HK",
    "zh",
    "zh-TW",
    "en-US",
    "en-GB",
    "en-AU",
}
METHODS = {"GET", "POST"}
BOOLEANS = {"true", "false"}

ATTRIBUTES: dict[str, set[str]] = {
    "Response": set(),
    "Say": {"voice", "language", "loop"},
    "Play": {"loop", "digits"},
    "Pause": {"length"},
    "Gather": {
        "action",
        "method",
        "input",
        "language",
        "hints",
        "numDigits",
        "timeout",
        "speechTimeout",
        "finishOnKey",
        "actionOnEmptyResult",
        "bargeIn",
        "profanityFilter",
        "speechModel",
        "enhanced",
        "partialResultCallback",
        "partialResultCallbackMethod",
        "maxSpeechTime",
    },
    "Record": {
        "action",
        "method",
        "timeout",
        "finishOnKey",
        "maxLength",
        "playBeep",
        "trim",
        "recordingStatusCallback",
        "recordingStatusCallbackMethod",
        "recordingStatusCallbackEvent",
        "transcribe",
        "transcribeCallback",
    },
    "Dial": {
        "action",
        "method",
        "timeout",
        "hangupOnStar",
        "timeLimit",
        "callerId",
        "record",
        "answerOnBridge",
        "ringTone",
    },
    "Number": {
        "sendDigits",
        "url",
        "method",
        "statusCallback",
        "statusCallbackEvent",
        "statusCallbackMethod",
        "machineDetection",
    },
    "Conference": {
        "muted",
        "beep",
        "startConferenceOnEnter",
        "endConferenceOnExit",
        "participantLabel",
        "waitUrl",
        "waitMethod",
        "maxParticipants",
        "record",
        "trim",
        "statusCallback",
        "statusCallbackEvent",
        "statusCallbackMethod",
        "recordingStatusCallback",
        "recordingStatusCallbackMethod",
        "recordingStatusCallbackEvent",
    },
    "Client": {
        "url",
        "method",
        "statusCallback",
        "statusCallbackEvent",
        "statusCallbackMethod",
    },
    "Enqueue": {"action", "method", "waitUrl", "waitUrlMethod", "maxQueueSize", "workflowSid"},
    "Redirect": {"method"},
    "Hangup": set(),
    "Leave": set(),
    "Reject": {"reason"},
}
CHILDREN: dict[str, set[str]] = {
    "Response": {
        "Say",
        "Play",
        "Pause",
        "Gather",
        "Record",
        "Dial",
        "Enqueue",
        "Redirect",
        "Hangup",
        "Leave",
        "Reject",
    },
    "Gather": {"Say", "Play", "Pause"},
    "Dial": {"Number", "Conference", "Client"},
}
TEXT_REQUIRED = {"Say", "Redirect", "Number", "Conference", "Client"}
URL_ATTRIBUTES = {
    "action",
    "waitUrl",
    "recordingStatusCallback",
    "transcribeCallback",
    "url",
    "statusCallback",
}


class TwimlError(AssertionError):
    pass


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise TwimlError(message)


def _url(value: str, where: str) -> None:
    _check(
        value.startswith(("https://", "http://", "/")), f"{where}: not an absolute URL: {value!r}"
    )


def _element(el: ET.Element, parent: str, path: str) -> None:
    tag = el.tag
    where = f"{path}/{tag}"
    _check(tag in ATTRIBUTES, f"{where}: unknown verb or noun")
    _check(tag in CHILDREN.get(parent, set()), f"{where}: not allowed inside <{parent}>")
    unknown = set(el.attrib) - ATTRIBUTES[tag]
    _check(not unknown, f"{where}: unknown attributes {sorted(unknown)}")
    for name, value in el.attrib.items():
        if name in URL_ATTRIBUTES:
            _url(value, f"{where}@{name}")
        if name.endswith("ethod"):
            _check(value in METHODS, f"{where}@{name}: {value!r}")
        if name in (
            "actionOnEmptyResult",
            "playBeep",
            "hangupOnStar",
            "answerOnBridge",
            "bargeIn",
            "transcribe",
            "profanityFilter",
            "enhanced",
            "startConferenceOnEnter",
            "endConferenceOnExit",
            "muted",
        ):
            _check(value in BOOLEANS, f"{where}@{name}: {value!r} is not true/false")
        if name in (
            "numDigits",
            "timeout",
            "maxLength",
            "length",
            "loop",
            "timeLimit",
            "maxQueueSize",
        ):
            _check(value.isdigit(), f"{where}@{name}: {value!r} is not a number")
    if tag == "Say":
        _check(el.get("language") in SAY_LANGUAGES, f"{where}: language {el.get('language')!r}")
    if tag == "Gather":
        _check(bool(el.get("action")), f"{where}: no action")
        modes = (el.get("input") or "dtmf").split()
        _check(set(modes) <= {"dtmf", "speech"} and modes, f"{where}: input {el.get('input')!r}")
        if "speech" in modes:
            _check(
                el.get("language") in SPEECH_LANGUAGES,
                f"{where}: speech language {el.get('language')!r}",
            )
    if tag == "Record":
        _check(bool(el.get("action")), f"{where}: no action")
    if tag in TEXT_REQUIRED:
        _check(bool((el.text or "").strip()), f"{where}: empty text")
    if tag == "Redirect":
        _url((el.text or "").strip(), where)
    if tag == "Enqueue":
        name = (el.text or "").strip()
        _check(0 < len(name) <= 64, f"{where}: queue name must be 1-64 characters")
    if tag not in CHILDREN:
        _check(len(el) == 0, f"{where}: may not have children")
    for child in el:
        _element(child, tag, where)


def validate(body: str | bytes, content_type: str = "text/xml") -> ET.Element:
    """Raise TwimlError unless `body` is TwiML Twilio would run as we mean it; return the root."""
    _check(
        content_type.split(";")[0].strip() in ("text/xml", "application/xml"),
        f"Content-Type {content_type!r} is not text/xml",
    )
    raw = body.encode() if isinstance(body, str) else body
    _check(
        raw.startswith(b"<?xml") or raw.startswith(b"<Response"), "text before the XML declaration"
    )
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise TwimlError(f"not well-formed: {exc}") from exc
    _check(root.tag == "Response", f"root is <{root.tag}>, not <Response>")
    _check(not (root.text or "").strip(), "text directly inside <Response>")
    for child in root:
        _element(child, "Response", "")
    return root
