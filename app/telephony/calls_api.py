"""Live-call control through Twilio's REST API: transfer a caller to a human, or hang up."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0

# What each common refusal means for the person reading the log. Source: twilio.com/docs/errors
_HINTS = {
    20003: "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
    20404: "no such call on this account, or it is gone",
    21220: "the call already ended",
}


class TwilioUnavailable(RuntimeError):
    """Twilio is not configured, or its REST API refused or failed a request."""


class TwilioCalls:
    """Updates live calls (`POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json`).

    Uses the official SDK's asyncio support (`AsyncTwilioHttpClient` + `update_async`), so no
    request blocks the event loop. The aiohttp session behind it is made on first use, because
    aiohttp binds a session to the running loop; close it with `aclose()`.
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Keep the credentials; nothing connects until the first request.

        Args:
            account_sid: The account (`AC…`) whose calls these are.
            auth_token: That account's auth token (sent as HTTP Basic auth, never logged).
            api_url: Another base URL for the `api` domain (a proxy, or the tests' fake);
                None: https://api.twilio.com.
            timeout_s: The most one request may take, connection included.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._api_url = api_url.rstrip("/") if api_url else None
        self._timeout_s = timeout_s
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioCalls | None:
        """A client from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_API_URL; None if unset."""
        if (
            not settings.telephony.twilio_account_sid
            or settings.telephony.twilio_auth_token is None
        ):
            return None
        token = settings.telephony.twilio_auth_token.get_secret_value()
        if not token:
            return None
        return cls(
            account_sid=settings.telephony.twilio_account_sid,
            auth_token=token,
            api_url=settings.telephony.twilio_api_url,
        )

    async def transfer(
        self,
        call_sid: str,
        *,
        to_number: str,
        announcement: str | None = None,
        caller_id: str | None = None,
    ) -> None:
        """Replace the call's TwiML with `<Say>announcement</Say><Dial>to_number</Dial>`.

        New TwiML takes the call away from `<Connect><Stream>`, so our media stream ends: the
        caller hears the announcement in Twilio's voice and then rings `to_number`.

        Raises:
            ValueError: `to_number` is empty.
            TwilioUnavailable: Twilio refused (e.g. 20404: no such call; 21220: it already
                ended) or could not be reached in time.
        """
        if not to_number.strip():
            raise ValueError("transfer needs a number to dial (set TRANSFER_NUMBER)")
        response = VoiceResponse()
        if announcement:
            response.say(announcement)
        response.dial(to_number, caller_id=caller_id)
        await self._update(call_sid, "transfer", twiml=str(response))
        logger.info("call %s: transferred to %s", call_sid, to_number)

    async def hang_up(self, call_sid: str) -> None:
        """End the call now (`Status=completed`).

        Raises:
            TwilioUnavailable: Twilio refused or could not be reached in time.
        """
        await self._update(call_sid, "hang up", status="completed")
        logger.info("call %s: hung up", call_sid)

    async def aclose(self) -> None:
        """Close the HTTP session; the next request opens a new one."""
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()

    async def __aenter__(self) -> TwilioCalls:
        """`async with TwilioCalls(...) as calls:` closes the session on the way out."""
        return self

    async def __aexit__(self, *_: object) -> None:
        """Close the session (`aclose()`)."""
        await self.aclose()

    def _rest(self) -> Client:
        if self._client is None:
            # No retries: replaying a transfer would restart the <Dial>.
            self._http = AsyncTwilioHttpClient()
            self._client = Client(
                self._account_sid,
                self._auth_token,
                http_client=self._http,
                # The SDK reads whatever it is not given (TWILIO_EDGE, TWILIO_REGION, which
                # rewrite the host) from os.environ; Settings is the only configuration, so it
                # gets an environment of just what we hand it (an empty one means os.environ).
                environment={"TWILIO_ACCOUNT_SID": self._account_sid},
            )
            if self._api_url:
                # Every REST domain object keeps its host in a public `base_url` (Domain in
                # twilio/base/domain.py), which builds each request's absolute URL; the SDK
                # has no constructor option for another host, so set the `api` domain's.
                self._client.api.base_url = self._api_url
        return self._client

    async def _update(self, call_sid: str, action: str, **fields: Any) -> None:
        call = self._rest().api.v2010.accounts(self._account_sid).calls(call_sid)
        try:
            # The async client ignores its own `timeout` and passes None to aiohttp, which means
            # no limit at all (twilio 9.x): bound the whole request here instead.
            async with asyncio.timeout(self._timeout_s):
                await call.update_async(**fields)
        except TwilioRestException as exc:
            raise TwilioUnavailable(
                _refusal(action, call_sid, exc.code, exc.status, exc.msg)
            ) from exc
        except TwilioServiceException as exc:
            # The RFC 9457 error shape some newer Twilio APIs answer with.
            detail = exc.detail or exc.title
            raise TwilioUnavailable(
                _refusal(action, call_sid, exc.code, exc.status, detail)
            ) from exc
        except TwilioException as exc:
            raise TwilioUnavailable(f"Twilio failed to {action} call {call_sid}: {exc}") from exc
        except TimeoutError as exc:
            raise TwilioUnavailable(
                f"Twilio did not answer within {self._timeout_s:g} s to {action} call {call_sid}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TwilioUnavailable(
                f"could not reach Twilio to {action} call {call_sid}: {exc!r}"
            ) from exc


def _refusal(action: str, call_sid: str, code: int | None, status: int, message: str) -> str:
    hint = _HINTS.get(code) if code is not None else None
    text = f"Twilio refused to {action} call {call_sid}: error {code} (HTTP {status}): {message}"
    return f"{text} ({hint})" if hint else text
