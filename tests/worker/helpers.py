"""Running the real relay and real RQ workers at a chosen moment (the controllable clock)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redis import Redis
from rq import SimpleWorker
from twilio.http import HttpClient
from twilio.http.response import Response

from intake import clock
from intake.config import get_settings
from intake.db import session_factory
from worker.outbox import relay_once
from worker.queues import all_queues


def run_jobs(conn: Redis, now: datetime, *, max_rounds: int = 30) -> None:
    """Relay every outbox row due at `now` and run it in a real RQ worker that sees `now`."""
    settings = get_settings()
    sessions = session_factory(settings.database_url)
    with clock.frozen(now):
        for _ in range(max_rounds):
            moved = relay_once(sessions, conn, settings.database_url, now=now)
            queued = sum(q.count for q in all_queues(conn))
            if not moved and not queued:
                return
            SimpleWorker(all_queues(conn), connection=conn).work(burst=True, with_scheduler=False)


class FakeTwilio(HttpClient):
    """Twilio's REST API as it answers: calls are created (201), listed, rate-limited (429),
    fail (5xx), or are created while the answer is lost on the way back."""

    def __init__(self) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.requests: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.script: list[str] = []
        # What POST .../Messages.json answers, in turn (then 201): "201", "429", "503", "lost", or a
        # Twilio error code ("21211", "21610", "21614", "21408") answered as Twilio does (400).
        self.sms_script: list[str] = []
        self.messages: list[dict[str, Any]] = []
        # DELETE .../Recordings/SID.json: deleted SIDs, and what the next deletes answer ("503").
        self.deleted_recordings: list[str] = []
        self.recording_delete_script: list[str] = []

    def request(
        self,
        method,
        uri,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ):  # type: ignore[no-untyped-def]
        self.requests.append({"method": method, "uri": uri, "params": params, "data": data})
        if method == "GET" and uri.endswith("/Calls.json"):
            to = (params or {}).get("To")
            found = [c for c in self.calls if to in (None, c["to"])]
            return Response(
                200,
                json.dumps(
                    {
                        "calls": found,
                        "page": 0,
                        "page_size": 50,
                        "uri": uri,
                        "first_page_uri": uri,
                        "next_page_uri": None,
                        "previous_page_uri": None,
                        "start": 0,
                        "end": len(found),
                    }
                ),
            )
        if method == "GET" and "/Calls/" in uri:
            sid = uri.rsplit("/", 1)[-1].removesuffix(".json")
            found = [c for c in self.calls if c["sid"] == sid]
            if found:
                return Response(200, json.dumps(found[0]))
            return Response(
                404,
                json.dumps(
                    {
                        "code": 20404,
                        "message": f"The requested resource {uri} was not found",
                        "more_info": "https://www.twilio.com/docs/errors/20404",
                        "status": 404,
                    }
                ),
            )
        if method == "POST" and "/Conferences/CF" in uri and "/Participants/" in uri:
            # Updating a conference participant (hold, unhold): answered like Twilio does.
            conference_sid = uri.split("/Conferences/", 1)[1].split("/", 1)[0]
            call_sid = uri.rsplit("/", 1)[-1].removesuffix(".json")
            participant = {
                "account_sid": "AC" + "a" * 32,
                "call_sid": call_sid,
                "conference_sid": conference_sid,
                "hold": (data or {}).get("Hold") == "true",
                "status": "connected",
                "uri": uri,
            }
            return Response(200, json.dumps(participant))
        if method == "POST" and "/Calls/" in uri:
            # Updating a live call (redirect to a Url, or status=completed/canceled).
            sid = uri.rsplit("/", 1)[-1].removesuffix(".json")
            found = [c for c in self.calls if c["sid"] == sid]
            call = found[0] if found else {**self._create({"To": "", "From": ""}), "sid": sid}
            if not found:
                self.calls.pop()
            if data and data.get("Status"):
                call["status"] = data["Status"]
            return Response(200, json.dumps(call))
        if method == "POST" and uri.endswith("/Calls.json"):
            step = self.script.pop(0) if self.script else "201"
            if step == "429":
                return Response(
                    429,
                    json.dumps(
                        {
                            "code": 20429,
                            "message": "Too Many Requests",
                            "more_info": "https://www.twilio.com/docs/errors/20429",
                            "status": 429,
                        }
                    ),
                )
            if step == "503":
                return Response(
                    503,
                    json.dumps(
                        {
                            "code": 20500,
                            "message": "Service Unavailable",
                            "more_info": "https://www.twilio.com/docs/errors/20500",
                            "status": 503,
                        }
                    ),
                )
            if step == "21211":
                return Response(
                    400,
                    json.dumps(
                        {
                            "code": 21211,
                            "message": f"The 'To' number {data['To']} is not a valid phone number.",
                            "more_info": "https://www.twilio.com/docs/errors/21211",
                            "status": 400,
                        }
                    ),
                )
            call = self._create(data)
            if step == "lost":
                raise_lost()
            return Response(201, json.dumps(call))
        if method == "POST" and uri.endswith("/Messages.json"):
            step = self.sms_script.pop(0) if self.sms_script else "201"
            if step in SMS_ERRORS:
                status, code, message = SMS_ERRORS[step]
                return Response(status, json.dumps(twilio_error(status, code, message, data)))
            sid = f"SM{len(self.requests):032d}"
            message = {
                "sid": sid,
                "status": "queued",
                "to": data["To"],
                "from": data["From"],
                "body": data["Body"],
            }
            self.messages.append(message)
            if step == "lost":
                raise_lost()
            return Response(201, json.dumps(message))
        if method == "DELETE" and "/Recordings/" in uri:
            sid = uri.rsplit("/", 1)[-1].removesuffix(".json")
            if self.recording_delete_script and self.recording_delete_script.pop(0) == "503":
                return Response(
                    503, json.dumps(twilio_error(503, 20500, "Service Unavailable", {}))
                )
            if sid in self.deleted_recordings:
                return Response(
                    404, json.dumps({"code": 20404, "message": "not found", "status": 404})
                )
            self.deleted_recordings.append(sid)
            return Response(204, "")
        return Response(404, json.dumps({"code": 20404, "message": "not found", "status": 404}))

    def _create(self, data: dict[str, Any]) -> dict[str, Any]:
        from email.utils import format_datetime

        sid = f"CA{len(self.calls) + 1:032x}"
        now = format_datetime(clock.now().replace(microsecond=0))  # the test world's time
        call = {
            "sid": sid,
            "account_sid": "AC" + "a" * 32,
            "to": data["To"],
            "from": data["From"],
            "status": "queued",
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "start_time": None,
            "uri": f"/2010-04-01/Accounts/AC{'a' * 32}/Calls/{sid}.json",
        }
        self.calls.append(call)
        return call


# Twilio's answers to POST .../Messages.json that create nothing: (HTTP status, code, message).
SMS_ERRORS: dict[str, tuple[int, int, str]] = {
    "429": (429, 20429, "Too Many Requests"),
    "503": (503, 20500, "Service Unavailable"),
    "21211": (400, 21211, "The 'To' number {To} is not a valid phone number."),
    "21408": (400, 21408, "Permission to send an SMS has not been enabled for the region {To}"),
    "21610": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "21614": (400, 21614, "'To' number {To} is not a valid mobile number"),
}


def twilio_error(status: int, code: int, message: str, data: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of a Twilio REST error."""
    return {
        "code": code,
        "message": message.format(To=data.get("To", "")),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def raise_lost() -> None:
    import requests

    raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=15)")
