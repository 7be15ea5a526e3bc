"""TwiML building in the caller's language: every phrase comes from a template, never from code."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response
from twilio.twiml.voice_response import Gather, VoiceResponse

from intake.config import HotlineConfig
from intake.phrases import render
from voice.languages import VoiceLanguage


def phrase(config: HotlineConfig, lang: VoiceLanguage, phrase_name: str, /, **context: Any) -> str:
    return render(phrase_name, lang.key, company=config.company(lang.written), **context)


class Script:
    """One TwiML document spoken in one language, with absolute action URLs under PUBLIC_BASE_URL."""

    def __init__(self, config: HotlineConfig, lang: VoiceLanguage, base_url: str) -> None:
        self.config = config
        self.lang = lang
        self.base_url = base_url.rstrip("/")
        self.response = VoiceResponse()

    def url(self, path: str, **query: Any) -> str:
        params = {k: v for k, v in query.items() if v is not None}
        return f"{self.base_url}{path}" + (f"?{urlencode(params)}" if params else "")

    def text(self, phrase_name: str, /, **context: Any) -> str:
        return phrase(self.config, self.lang, phrase_name, **context)

    def say(
        self,
        phrase_name: str,
        target: Any = None,
        /,
        *,
        lang: VoiceLanguage | None = None,
        **context: Any,
    ) -> None:
        lang = lang or self.lang
        text = phrase(self.config, lang, phrase_name, **context)
        attrs = {"language": lang.say}
        if lang.voice:
            attrs["voice"] = lang.voice
        (target if target is not None else self.response).say(text, **attrs)

    def gather(
        self,
        path: str,
        *,
        input: str = "dtmf",
        num_digits: int | None = None,
        hints: str | None = None,
        timeout: int = 6,
        finish_on_key: str | None = None,
        **query: Any,
    ) -> Gather:
        attrs: dict[str, Any] = {
            "action": self.url(path, **query),
            "method": "POST",
            "input": input,
            "timeout": timeout,
        }
        if "speech" in input:
            attrs["language"] = self.lang.speech
            attrs["speech_timeout"] = "auto"
        if num_digits:
            attrs["num_digits"] = num_digits
        if hints:
            attrs["hints"] = hints
        if finish_on_key is not None:
            attrs["finish_on_key"] = finish_on_key
        return self.response.gather(**attrs)

    def redirect(self, path: str, **query: Any) -> None:
        self.response.redirect(self.url(path, **query), method="POST")

    def hangup(self) -> None:
        self.response.hangup()

    def http(self) -> Response:
        return xml_response(self.response)


def xml_response(twiml: VoiceResponse | str, status: int = 200) -> Response:
    return Response(str(twiml), status=status, mimetype="text/xml")


def empty() -> Response:
    return xml_response(VoiceResponse())
