"""Privacy: what of a caller's words may be stored, logged or sent to a cloud model.

This package owns payment-data redaction: card numbers (written, grouped or spoken, as Whisper
transcribes them), security codes and card expiry dates are replaced by placeholders such as
"[card number]" before a caller's words enter a conversation, and digits keyed on the keypad in
a run are masked. Calls apply it just after speech-to-text (`app.calls.responder`), the
playground as a message arrives (`app.api.playground`); each organization may turn it off
(`organizations.redact_payment_data`, on by default). Masking phone numbers and keypad digits
in log records lives with the logging set-up, in `app.observability.logs`.
"""

from app.privacy.keypad import MASKED_KEY_PRESS, KeypadRun, mask_key_after, pressed_digit
from app.privacy.payment import (
    CARD_NUMBER,
    EXPIRY_DATE,
    SECURITY_CODE,
    Redaction,
    luhn_valid,
    redact_payment_data,
)

__all__ = [
    "CARD_NUMBER",
    "EXPIRY_DATE",
    "MASKED_KEY_PRESS",
    "SECURITY_CODE",
    "KeypadRun",
    "Redaction",
    "luhn_valid",
    "mask_key_after",
    "pressed_digit",
    "redact_payment_data",
]
