"""Twilio's part of a call, played offline: signed webhooks, TwiML interpreted, status callbacks.

The same interpreter drives a running server over HTTP (`hotline call`) and the Flask test client
in the tests, so what the tests prove is what a demonstration shows.
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from voice.signature import sign

ACCOUNT_SID = "AC" + "0" * 32
TERMINAL = ("completed", "busy", "no-answer", "failed", "canceled")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class Transport(Protocol):
    def post(
        self, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, str, str]:
        """POST form `params` to the absolute public `url`; (status, content type, body)."""
        ...


class HttpTransport:
    """Sends to a running server: the public URL Twilio would call, rerouted to `server_url`."""

    def __init__(self, public_base_url: str, server_url: str, timeout: float = 15.0) -> None:
        self.public = public_base_url.rstrip("/")
        self.server = server_url.rstrip("/")
        self.timeout = timeout

    def post(
        self, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, str, str]:
        target = self.server + url[len(self.public) :] if url.startswith(self.public) else url
        request = urllib.request.Request(
            target, data=urlencode(params).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read().decode("utf-8", "replace")
                return response.status, response.headers.get("Content-Type", ""), body
        except urllib.error.HTTPError as exc:
            return (
                exc.code,
                exc.headers.get("Content-Type", ""),
                exc.read().decode("utf-8", "replace"),
            )


class FlaskTransport:
    """Sends through a Flask test client, with the raw path Twilio would request."""

    def __init__(self, client: Any, public_base_url: str) -> None:
        self.client = client
        self.public = public_base_url.rstrip("/")

    def post(
        self, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, str, str]:
        path = url[len(self.public) :] if url.startswith(self.public) else urlsplit(url).path
        response = self.client.post(path, data=params, headers=headers)
        return (
            response.status_code,
            response.headers.get("Content-Type", ""),
            response.get_data(as_text=True),
        )


@dataclass(frozen=True)
class Step:
    """One thing the caller does at a prompt: press keys, say words, stay silent or hang up."""

    kind: str
    value: str = ""


def press(digits: str) -> Step:
    return Step("press", digits)


def say(words: str) -> Step:
    return Step("say", words)


SILENCE = Step("silence")
HANGUP = Step("hangup")


@dataclass
class Exchange:
    url: str
    params: dict[str, str]
    status: int
    content_type: str
    body: str


@dataclass
class CallResult:
    call_sid: str
    said: list[tuple[str, str]] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    ended_by: str = "app"
    errors: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(text for _, text in self.said)


class _CallEnded(Exception):
    pass


class CallSimulator:
    """Plays Twilio for one call at a time."""

    def __init__(
        self,
        transport: Transport,
        auth_token: str,
        public_base_url: str,
        *,
        steps: list[Step] | None = None,
        dial_outcomes: list[str] | None = None,
        queue_outcome: str = "bridged",
        queue_position: int = 3,
        record_seconds: int = 6,
        duplicate_status: bool = False,
        out_of_order: bool = False,
        ask: Callable[[str], str] | None = None,
        echo: Callable[[str], None] | None = None,
        max_requests: int = 60,
        on_queue_wait: Callable[[str], str | None] | None = None,
        on_conference: Callable[[str, str], tuple[str, str]] | None = None,
    ) -> None:
        self.transport = transport
        self.token = auth_token
        self.public = public_base_url.rstrip("/")
        self.steps: Iterator[Step] = iter(steps or [])
        self.dial_outcomes = iter(dial_outcomes or [])
        self.queue_outcome = queue_outcome
        self.queue_position = queue_position
        self.record_seconds = record_seconds
        self.duplicate_status = duplicate_status
        self.out_of_order = out_of_order
        self.ask = ask
        self.echo = echo or (lambda line: None)
        self.max_requests = max_requests
        # A caller who really waits: after each hold document, None = keep waiting, "hangup", or
        # the URL the app moved the call to (Twilio's REST redirect).
        self.on_queue_wait = on_queue_wait
        # In a <Conference>: ("hangup", seconds) this party hangs up, ("ended", seconds) the
        # conference ended, ("redirect", url) the app moved this leg away.
        self.on_conference = on_conference
        self._base: dict[str, str] = {}
        self._result = CallResult("")

    # --- requests ---------------------------------------------------------------------------

    def _post(self, url: str, extra: dict[str, str] | None = None, base: bool = True) -> Exchange:
        if len(self._result.exchanges) >= self.max_requests:
            raise _CallEnded("too many requests in one call")
        url = url if url.startswith("http") else self.public + url
        params = {**(self._base if base else {}), **(extra or {})}
        headers = {"X-Twilio-Signature": sign(self.token, url, params)}
        status, ctype, body = self.transport.post(url, params, headers)
        exchange = Exchange(url, params, status, ctype, body)
        self._result.exchanges.append(exchange)
        return exchange

    def _document(self, url: str, extra: dict[str, str] | None = None) -> ET.Element:
        exchange = self._post(url, extra)
        self._base["CallStatus"] = "in-progress"
        if exchange.status != 200:
            self._result.errors.append(f"{exchange.status} from {url}")
            self.echo(f"!! {exchange.status} from {url}: {exchange.body[:200]}")
            raise _CallEnded("application error")
        try:
            return ET.fromstring(exchange.body.encode())
        except ET.ParseError as exc:
            self._result.errors.append(f"unparsable TwiML from {url}: {exc}")
            raise _CallEnded("document parse failure") from exc

    # --- the caller -------------------------------------------------------------------------

    def _next_step(self, prompt: str) -> Step:
        step = next(self.steps, None)
        if step is not None:
            return step
        if self.ask is None:
            return SILENCE
        answer = self.ask(prompt).strip()
        if answer in ("", "-"):
            return SILENCE
        if answer.lower() in ("h", "hangup"):
            return HANGUP
        if all(c in "0123456789*#" for c in answer):
            return press(answer)
        return say(answer)

    def _say(self, element: ET.Element) -> None:
        lang = element.get("language", "en-US")
        text = (element.text or "").strip()
        self._result.said.append((lang, text))
        self.echo(f"[{lang}] {text}")

    # --- TwiML --------------------------------------------------------------------------------

    def _run(self, document: ET.Element, *, waiting: bool = False) -> ET.Element | None:
        """Execute verbs in order; return the next document to run, or None when this one ends."""
        for verb in list(document):
            tag = verb.tag
            if tag == "Say":
                self._say(verb)
            elif tag in ("Pause", "Play"):
                continue
            elif tag == "Gather":
                following = self._gather(verb)
                if following is not None:
                    return following
            elif tag == "Record":
                following = self._record(verb)
                if following is not None:
                    return following
            elif tag == "Redirect":
                return self._document((verb.text or "").strip())
            elif tag == "Dial":
                following = self._dial(verb)
                if following is not None:
                    return following
            elif tag == "Enqueue":
                return self._enqueue(verb)
            elif tag == "Leave":
                if waiting:
                    raise _LeftQueue()
            elif tag in ("Hangup", "Reject"):
                self._result.ended_by = "app"
                raise _CallEnded("hangup")
        return None

    def _gather(self, verb: ET.Element) -> ET.Element | None:
        for child in verb:
            if child.tag == "Say":
                self._say(child)
        modes = (verb.get("input") or "dtmf").split()
        step = self._next_step("keys or words (empty = silence, h = hang up)> ")
        if step.kind == "hangup":
            self._result.ended_by = "caller"
            raise _CallEnded("caller hung up")
        extra: dict[str, str] = {}
        if step.kind == "press" and "dtmf" in modes:
            extra = {"Digits": step.value, "FinishedOnKey": ""}
            self.echo(f"   (presses {step.value})")
        elif step.kind == "say" and "speech" in modes:
            extra = {"SpeechResult": step.value, "Confidence": "0.91"}
            self.echo(f"   (says “{step.value}”)")
        elif verb.get("actionOnEmptyResult") != "true":
            self.echo("   (silence)")
            return None
        return self._document(verb.get("action") or "", extra)

    def _record(self, verb: ET.Element) -> ET.Element | None:
        step = self._next_step("speak after the beep (enter = record, h = hang up)> ")
        if step.kind == "hangup":
            self._result.ended_by = "caller"
            raise _CallEnded("caller hung up")
        if self.record_seconds <= 0:
            self.echo("   (empty recording: Twilio skips the action)")
            return None
        sid = new_sid("RE")
        recording = {
            "RecordingSid": sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}",
            "RecordingDuration": str(self.record_seconds),
        }
        self.echo(f"   (records {self.record_seconds}s: {step.value or 'voice message'})")
        following = self._document(verb.get("action") or "", {**recording, "Digits": "#"})
        callback = verb.get("recordingStatusCallback")
        if callback:
            self._post(
                callback,
                {
                    **recording,
                    "RecordingStatus": "completed",
                    "RecordingChannels": "1",
                    "RecordingSource": "RecordVerb",
                    "CallSid": self._base["CallSid"],
                    "AccountSid": ACCOUNT_SID,
                },
                base=False,
            )
        return following

    def _conference(self, verb: ET.Element, name: str) -> ET.Element | None:
        assert self.on_conference is not None
        self.echo(f"   (in conference {name})")
        noun = next(n for n in verb if n.tag == "Conference")
        if noun.get("statusCallback") and "join" in (noun.get("statusCallbackEvent") or ""):
            # Twilio tells the app who joined which conference (one SID per room name).
            digest = hashlib.sha256(name.encode()).hexdigest()[:32]
            self._post(
                noun.get("statusCallback") or "",
                {
                    "ConferenceSid": f"CF{digest}",
                    "FriendlyName": name,
                    "StatusCallbackEvent": "participant-join",
                    "CallSid": self._result.call_sid,
                    "AccountSid": ACCOUNT_SID,
                },
                base=False,
            )
        what, value = self.on_conference(self._result.call_sid, name)
        action = verb.get("action")
        seconds = value if what in ("hangup", "ended") else "0"
        params = {"DialCallStatus": "completed", "DialCallDuration": seconds, "DialBridged": "true"}
        if what == "redirect":
            if action:
                self._post(action, params)  # Twilio asks, and ignores the answer
            return self._document(value)
        if what == "hangup":
            self._result.ended_by = "caller"
            if action:
                self._post(action, params)
            raise _CallEnded("hung up in the conference")
        return self._document(action, params) if action else None

    def _dial(self, verb: ET.Element) -> ET.Element | None:
        conference = [n for n in verb if n.tag == "Conference"]
        if conference and self.on_conference is not None:
            return self._conference(verb, (conference[0].text or "").strip())
        outcome = next(self.dial_outcomes, "completed")
        numbers = [n.text for n in verb if n.tag == "Number"]
        self.echo(f"   (dialling {', '.join(filter(None, numbers))}: {outcome})")
        action = verb.get("action")
        if not action:
            return None
        duration = "42" if outcome == "completed" else "0"
        return self._document(
            action,
            {"DialCallStatus": outcome, "DialCallSid": new_sid("CA"), "DialCallDuration": duration},
        )

    def _wait_in_queue(self, verb: ET.Element) -> ET.Element | None:
        """A caller who waits as long as it takes, hold document after hold document."""
        assert self.on_queue_wait is not None
        queue_sid = new_sid("QU")
        wait_url, action = verb.get("waitUrl"), verb.get("action")
        result, moved_to, rounds = "hangup", "", 0
        while True:
            rounds += 1
            try:
                if wait_url:
                    document: ET.Element | None = self._document(
                        wait_url,
                        {
                            "QueueSid": queue_sid,
                            "QueueTime": str(rounds * 15),
                            "AvgQueueTime": "60",
                            "MaxQueueSize": "1000",
                        },
                    )
                    while document is not None:
                        document = self._run(document, waiting=True)
            except _LeftQueue:
                result = "leave"
                break
            what = self.on_queue_wait(self._result.call_sid)
            if what == "hangup":
                break
            if what:
                result, moved_to = "redirected", what
                break
        self.echo(f"   (queue {(verb.text or '').strip()}: {result})")
        params = {"QueueResult": result, "QueueSid": queue_sid, "QueueTime": str(rounds * 15)}
        if result == "hangup":
            self._result.ended_by = "caller"
            if action:
                self._post(action, params)
            raise _CallEnded("caller hung up in the queue")
        if result == "redirected":
            if action:
                self._post(action, params)  # answered, but Twilio runs the redirect's TwiML
            return self._document(moved_to)
        return self._document(action, params) if action else None

    def _enqueue(self, verb: ET.Element) -> ET.Element | None:
        if self.on_queue_wait is not None:
            return self._wait_in_queue(verb)
        queue_sid = new_sid("QU")
        result = self.queue_outcome
        wait_url = verb.get("waitUrl")
        if wait_url:
            position = str(self.queue_position)
            try:
                document: ET.Element | None = self._document(
                    wait_url,
                    {
                        "QueuePosition": position,
                        "QueueSid": queue_sid,
                        "QueueTime": "12",
                        "AvgQueueTime": "60",
                        "CurrentQueueSize": position,
                        "MaxQueueSize": "100",
                    },
                )
                while document is not None:
                    document = self._run(document, waiting=True)
            except _LeftQueue:
                result = "leave"
        self.echo(f"   (queue {(verb.text or '').strip()}: {result})")
        action = verb.get("action")
        if result == "hangup":
            self._result.ended_by = "caller"
            if action:
                self._post(
                    action, {"QueueResult": "hangup", "QueueSid": queue_sid, "QueueTime": "30"}
                )
            raise _CallEnded("caller hung up in the queue")
        if not action:
            return None
        return self._document(
            action, {"QueueResult": result, "QueueSid": queue_sid, "QueueTime": "30"}
        )

    # --- whole calls ------------------------------------------------------------------------

    def _play(self, url: str) -> None:
        try:
            document: ET.Element | None = self._document(url)
            while document is not None:
                document = self._run(document)
        except _CallEnded:
            pass
        except _LeftQueue:
            pass

    def _status_callbacks(self, url: str, statuses: list[str], extra: dict[str, str]) -> None:
        events = [
            {
                **self._base,
                **extra,
                "CallStatus": status,
                "SequenceNumber": str(n),
                "CallbackSource": "call-progress-events",
                "Timestamp": "Sun, 29 Nov 2026 03:00:00 +0000",
            }
            for n, status in enumerate(statuses)
        ]
        if events and events[-1]["CallStatus"] == "completed":
            events[-1]["CallDuration"] = str(max(1, len(self._result.exchanges) * 7))
        if self.out_of_order:
            events.reverse()
        if self.duplicate_status:
            events = [e for event in events for e in (event, dict(event))]
        for event in events:
            self._post(url, event, base=False)

    def call(
        self,
        from_number: str,
        to_number: str,
        *,
        call_sid: str | None = None,
        incoming_path: str = "/voice/incoming",
        status_path: str = "/voice/status",
    ) -> CallResult:
        """An inbound call to the hotline number, from ringing to the status callbacks."""
        sid = call_sid or new_sid("CA")
        self._result = CallResult(sid)
        self._base = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": from_number,
            "To": to_number,
            "Caller": from_number,
            "Called": to_number,
            "FromCountry": "",
            "ToCountry": "",
        }
        self.echo(f"== call {sid} from {from_number} to {to_number}")
        self._play(incoming_path)
        self._status_callbacks(status_path, ["ringing", "in-progress", "completed"], {})
        self.echo(f"== call ended ({self._result.ended_by})")
        return self._result

    def answer(
        self,
        call_sid: str,
        url: str,
        status_callback: str | None,
        *,
        from_number: str,
        to_number: str,
        answered_by: str = "human",
        outcome: str = "answered",
    ) -> CallResult:
        """An outbound call the dialer placed, answered (or not) by the resident's phone."""
        self._result = CallResult(call_sid)
        self._base = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "From": from_number,
            "To": to_number,
            "Caller": from_number,
            "Called": to_number,
        }
        self.echo(f"== outbound call {call_sid} to {to_number}: {outcome} ({answered_by})")
        if outcome == "answered":
            self._base["AnsweredBy"] = answered_by
            self._play(url)
            statuses = ["initiated", "ringing", "in-progress", "completed"]
        else:
            statuses = ["initiated", "ringing", outcome]
        if status_callback:
            extra = {"AnsweredBy": answered_by} if outcome == "answered" else {}
            self._status_callbacks(status_callback, statuses, extra)
        return self._result


class _LeftQueue(Exception):
    pass
