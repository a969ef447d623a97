"""Which phone numbers the operator's Twilio account owns, through Twilio's official SDK.

A tenant may claim a number only if calls to it reach this server's Twilio account: otherwise
it could take over a number that belongs to someone else on a shared Velox.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0


class TwilioNumbersUnavailable(RuntimeError):
    """Twilio refused the lookup or could not be reached; nothing is known about the number."""


class TwilioNumbers:
    """Reads the account's IncomingPhoneNumbers; use as `async with TwilioNumbers(...)`."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Keep the credentials; nothing connects until the first lookup.

        Args:
            account_sid: The account (`AC…`) whose numbers count as the operator's.
            auth_token: That account's auth token (HTTP Basic auth, never logged).
            api_url: Another base URL for the `api` domain (a proxy, or the tests' fake).
            timeout_s: The most one lookup may take.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._api_url = api_url.rstrip("/") if api_url else None
        self._timeout_s = timeout_s
        self._http: AsyncTwilioHttpClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioNumbers | None:
        """A client from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_API_URL; None if unset."""
        telephony = settings.telephony
        token = (
            telephony.twilio_auth_token.get_secret_value() if telephony.twilio_auth_token else ""
        )
        if not telephony.twilio_account_sid or not token:
            return None
        return cls(
            account_sid=telephony.twilio_account_sid,
            auth_token=token,
            api_url=telephony.twilio_api_url,
        )

    async def owns(self, number: str) -> bool:
        """Whether `number` (E.164) is one of the account's incoming phone numbers.

        Raises:
            TwilioNumbersUnavailable: Twilio refused the lookup or did not answer in time.
        """
        try:
            # The async client passes no timeout to aiohttp (twilio 9.x): bound it here.
            async with asyncio.timeout(self._timeout_s):
                found = await self._client().incoming_phone_numbers.list_async(
                    phone_number=number, limit=20
                )
        except TwilioRestException as exc:
            hint = " (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)" if exc.code == 20003 else ""
            raise TwilioNumbersUnavailable(
                f"Twilio refused to list the account's numbers: error {exc.code} "
                f"(HTTP {exc.status}): {exc.msg}{hint}"
            ) from exc
        except TimeoutError as exc:
            raise TwilioNumbersUnavailable(
                f"Twilio did not answer within {self._timeout_s:g} s"
            ) from exc
        except (TwilioException, aiohttp.ClientError, OSError) as exc:
            raise TwilioNumbersUnavailable(f"could not reach Twilio: {exc!r}") from exc
        # PhoneNumber filters by partial match (twilio.com/docs/phone-numbers/api/
        # incomingphonenumber-resource#read-multiple-incomingphonenumber-resources): only an
        # exact hit counts.
        return any(record.phone_number == number for record in found)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def __aenter__(self) -> TwilioNumbers:
        """`async with` closes the session on the way out."""
        return self

    async def __aexit__(self, *_: object) -> None:
        """Close the session (`aclose()`)."""
        await self.aclose()

    def _client(self) -> Client:
        self._http = self._http or AsyncTwilioHttpClient()
        client = Client(
            self._account_sid,
            self._auth_token,
            http_client=self._http,
            # Only what we hand it: the SDK would otherwise read TWILIO_EDGE/TWILIO_REGION (which
            # rewrite the host) from os.environ (same reasoning as calls_api.TwilioCalls).
            environment={"TWILIO_ACCOUNT_SID": self._account_sid},
        )
        if self._api_url:
            # The SDK has no option for another host; each domain keeps it in `base_url`.
            client.api.base_url = self._api_url
        return client
