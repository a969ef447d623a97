"""A local stand-in for Twilio's REST API Call and IncomingPhoneNumber resources, reached through
the official `twilio` SDK pointed at its URL (see `TwilioCalls(api_url=...)`).

It speaks the documented wire protocol for `/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`
(twilio.com/docs/voice/api/call-resource): HTTP Basic auth with the account sid and auth token,
form-encoded updates (`Twiml`, `Url`, `Status`, ...), the Call resource as JSON in reply, and
errors in Twilio's shape `{"code", "message", "more_info", "status"}`. Live calls exist only once
a test registers them with `add_call`; every request is kept for assertions.

It also lists the account's numbers, `GET .../IncomingPhoneNumbers.json?PhoneNumber=...`
(twilio.com/docs/phone-numbers/api/incomingphonenumber-resource), as one page in Twilio's
envelope; `PhoneNumber` matches partially, with `*` for any digit, as Twilio documents. Numbers
exist once a test registers them with `add_number`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

_CALL_PATH = re.compile(r"/2010-04-01/Accounts/([^/]+)/Calls/([^/]+)\.json")
_NUMBERS_PATH = re.compile(r"/2010-04-01/Accounts/([^/]+)/IncomingPhoneNumbers\.json")
# Statuses Twilio reports for a call that can still be redirected or ended.
LIVE_STATUSES = frozenset({"queued", "ringing", "in-progress"})


@dataclass
class FakeRequest:
    """One request as the fake saw it; `form` holds the decoded POST body (last value wins)."""

    method: str
    path: str
    username: str | None
    password: str | None
    form: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


class FakeTwilio:
    """Run with `with FakeTwilio() as twilio:`; `twilio.url` is the SDK's `api` base URL."""

    def __init__(self, *, account_sid: str | None = None, auth_token: str | None = None) -> None:
        """Fresh credentials unless given; the socket opens now, serving starts on `__enter__`."""
        self.account_sid = account_sid or f"AC{secrets.token_hex(16)}"
        self.auth_token = auth_token or secrets.token_hex(16)
        self.requests: list[FakeRequest] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.numbers: dict[str, dict[str, Any]] = {}  # by E.164 number
        # Every TwiML document each call was updated with, oldest first.
        self.twiml: dict[str, list[str]] = {}
        self.delay_s = 0.0  # answer this late, for timeout tests
        self._lock = threading.Lock()
        self._closing = threading.Event()  # cuts delays short when the server stops
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-twilio",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeTwilio:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def add_call(
        self,
        call_sid: str | None = None,
        from_: str = "+15550100",
        to: str = "+15550199",
        *,
        status: str = "in-progress",
        direction: str = "inbound",
    ) -> dict[str, Any]:
        """Register a call Twilio would know about; returns its resource (live, mutable)."""
        sid = call_sid or f"CA{secrets.token_hex(16)}"
        now = formatdate(usegmt=True)
        resource: dict[str, Any] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "status": status,
            "direction": direction,
            "from": from_,
            "from_formatted": from_,
            "to": to,
            "to_formatted": to,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "answered_by": None,
            "caller_name": None,
            "forwarded_from": None,
            "group_sid": None,
            "trunk_sid": None,
            "queue_time": "0",
            "annotation": None,
            "price": None,
            "price_unit": "USD",
            "duration": None,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "end_time": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json",
            "subresource_uris": {},
        }
        with self._lock:
            self.calls[sid] = resource
        return resource

    def add_number(self, number: str, *, friendly_name: str | None = None) -> dict[str, Any]:
        """Register a number the account owns (an IncomingPhoneNumber resource)."""
        sid = f"PN{secrets.token_hex(16)}"
        now = formatdate(usegmt=True)
        base = f"/2010-04-01/Accounts/{self.account_sid}"
        resource: dict[str, Any] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "phone_number": number,
            "friendly_name": friendly_name or number,
            "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
            "status": "in-use",
            "origin": "twilio",
            "beta": False,
            "voice_url": None,
            "voice_method": "POST",
            "voice_fallback_url": None,
            "voice_fallback_method": "POST",
            "voice_caller_id_lookup": False,
            "voice_application_sid": None,
            "voice_receive_mode": "voice",
            "status_callback": None,
            "status_callback_method": "POST",
            "sms_url": None,
            "sms_method": "POST",
            "trunk_sid": None,
            "address_requirements": "none",
            "emergency_status": "Inactive",
            "date_created": now,
            "date_updated": now,
            "uri": f"{base}/IncomingPhoneNumbers/{sid}.json",
            "subresource_uris": {},
        }
        with self._lock:
            self.numbers[number] = resource
        return resource

    def list_numbers(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """One page of the account's numbers, filtered by `PhoneNumber` as Twilio does."""
        wanted = query.get("PhoneNumber")
        # Partial matches, `*` standing for any one digit.
        matcher = (
            re.compile(re.escape(wanted).replace(r"\*", r"\d")) if wanted is not None else None
        )
        page_size = int(query.get("PageSize") or 50)
        with self._lock:
            found = [
                dict(resource)
                for number, resource in sorted(self.numbers.items())
                if matcher is None or matcher.search(number)
            ][:page_size]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"
        return 200, {
            "incoming_phone_numbers": found,
            "end": max(len(found) - 1, 0),
            "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": f"{uri}?PageSize={page_size}&Page=0",
        }

    def last_twiml(self, call_sid: str) -> str:
        """The newest TwiML the call was updated with."""
        with self._lock:
            documents = self.twiml.get(call_sid)
            if not documents:
                raise AssertionError(f"call {call_sid} was never sent TwiML")
            return documents[-1]

    def update_call(self, call_sid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Apply a `POST .../Calls/{sid}.json` the way Twilio documents it."""
        with self._lock:
            call = self.calls.get(call_sid)
            if call is None:
                return 404, self._not_found(call_sid)
            status = form.get("Status")
            redirect = "Twiml" in form or "Url" in form
            # 20001 stands in for whatever exact code Twilio gives these two bad requests.
            if "Twiml" in form and "Url" in form:
                return 400, _error(400, 20001, "Twiml and Url are mutually exclusive")
            if status not in (None, "completed", "canceled"):
                return 400, _error(400, 20001, f"Status must be completed or canceled: {status}")
            if (redirect or status) and call["status"] not in LIVE_STATUSES:
                # Source: twilio.com/docs/errors/21220 (Invalid call state)
                return 400, _error(400, 21220, "Call is not in-progress. Cannot redirect.")
            now = formatdate(usegmt=True)
            if "Twiml" in form:
                self.twiml.setdefault(call_sid, []).append(form["Twiml"])
            if status == "completed" or (status == "canceled" and call["status"] != "in-progress"):
                call.update(status=status, end_time=now)
            call["date_updated"] = now
            return 200, dict(call)

    def fetch_call(self, call_sid: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            call = self.calls.get(call_sid)
            return (200, dict(call)) if call is not None else (404, self._not_found(call_sid))

    def _not_found(self, call_sid: str) -> dict[str, Any]:
        path = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}.json"
        return _error(404, 20404, f"The requested resource {path} was not found")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
                path, _, query_string = self.path.partition("?")
                query = {k: v[-1] for k, v in parse_qs(query_string).items()}
                username, password = _basic_auth(self.headers.get("authorization"))
                with fake._lock:
                    fake.requests.append(FakeRequest(method, path, username, password, form, query))
                if fake.delay_s and fake._closing.wait(fake.delay_s):
                    return None
                if (username, password) != (fake.account_sid, fake.auth_token):
                    # Source: twilio.com/docs/errors/20003 (Authentication Error)
                    return self._reply(401, _error(401, 20003, "Authenticate"), challenge=True)
                numbers = _NUMBERS_PATH.fullmatch(path)
                if numbers is not None and method == "GET":
                    if numbers.group(1) != fake.account_sid:
                        return self._reply(
                            404, _error(404, 20404, f"The requested resource {path} was not found")
                        )
                    return self._reply(*fake.list_numbers(query))
                match = _CALL_PATH.fullmatch(path)
                if match is None or match.group(1) != fake.account_sid:
                    return self._reply(
                        404, _error(404, 20404, f"The requested resource {path} was not found")
                    )
                call_sid = match.group(2)
                if method == "GET":
                    return self._reply(*fake.fetch_call(call_sid))
                return self._reply(*fake.update_call(call_sid, form))

            def _reply(
                self, status: int, payload: dict[str, Any], *, challenge: bool = False
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                if challenge:
                    self.send_header("www-authenticate", 'Basic realm="Twilio API"')
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None, None
    return username, password


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
