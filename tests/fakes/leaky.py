"""An issuer that leaks card data: the AgentCard fake, with a full PAN, CVC and expiry put into
every field of every JSON answer it can without breaking the API (ids and enums stay as the docs
say), error messages included.

Issuers that do return card details (ClawdCards, Proxy with ``rawPan``) send them as fields;
a careless one echoes them into free text. Both are here, in many spellings: grouped with spaces,
dashes, dots, NBSPs, fullwidth digits, as a JSON number, split over two fields, and in fields
named the ways issuers name them (``number``, ``cvc``, ``expirationMonth``...).

``LEAKS`` is what must never appear in anything the server writes; ``leaked_in(text)`` finds it.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.fakes.agentcard import FakeAgentCard

__all__ = ["API_KEY", "CVC", "EXPIRY", "PANS", "LeakyAgentCard", "leaked_in"]

PANS = {
    "visa": "4111111111111111",
    "mastercard": "5555555555554444",
    "amex": "378282246310005",
    "discover": "6011000990139424",
}
CVC = "9753"
EXP_MONTH, EXP_YEAR = "09", "2031"
EXPIRY = "09/31"
API_KEY = "ac_test_" + "leakykey" * 4

_VISA, _MC, _AMEX, _DISC = PANS["visa"], PANS["mastercard"], PANS["amex"], PANS["discover"]
# What a careless issuer writes into text: the card, its CVC and expiry, and the caller's key.
SENTENCE = (
    f" (card {_VISA[:4]} {_VISA[4:8]} {_VISA[8:12]} {_VISA[12:]}, cvc {CVC}, exp {EXPIRY};"
    f" backup {'-'.join(_MC[i : i + 4] for i in range(0, 16, 4))}"
    f" / {_AMEX[:4]}\u00a0{_AMEX[4:10]}\u00a0{_AMEX[10:]}"
    f" / {unicodedata.normalize('NFKC', _DISC).translate({c: c + 0xFEE0 for c in range(48, 58)})}"
    f"; key {API_KEY})"
)
FREE_TEXT = ("nickname", "merchant", "name", "description", "message", "reason_detail")


def _card_fields() -> dict[str, Any]:
    return {
        "number": _VISA,
        "pan": ".".join(_VISA[i : i + 4] for i in range(0, 16, 4)),
        "cardNumber": int(_MC),
        "cvc": CVC,
        "cvv2": int(CVC),
        "exp_month": int(EXP_MONTH),
        "exp_year": int(EXP_YEAR),
        "expirationMonth": EXP_MONTH,
        "expirationYear": EXP_YEAR,
        "expiry": EXPIRY,
        "card_details": {"number": _AMEX, "security_code": CVC, "expiration": EXPIRY},
        "pan_first_half": _DISC[:8],  # a PAN split over two neighbouring fields
        "pan_second_half": _DISC[8:],
        "raw": json.dumps({"number": _VISA, "cvc": CVC, "exp": EXPIRY}),
        "note": f"raw {_VISA}",
    }


def leak(value: Any, extra: str = "") -> Any:
    """``value`` with card data added to every object and appended to every free-text field
    (``extra`` too: more card numbers, in whatever shapes a test chose)."""
    if isinstance(value, list):
        return [leak(item, extra) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: leak(item, extra) for key, item in value.items()}
    for key in FREE_TEXT:
        if key in out and (out[key] is None or isinstance(out[key], str)):
            out[key] = (out[key] or "") + SENTENCE + extra
    return {**out, **_card_fields()}


class _Leaking:
    """ASGI middleware: every JSON answer goes out through ``leak``."""

    def __init__(self, app: ASGIApp, extra: Callable[[], str]) -> None:
        self.app = app
        self.extra = extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            with contextlib.suppress(ValueError):
                body = json.dumps(leak(json.loads(body), self.extra())).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


class LeakyAgentCard(FakeAgentCard):
    """``extra`` is called once per answer; what it returns is leaked into that answer's
    free-text fields (merchant names, error messages) besides the fixed leaks."""

    def __init__(self, extra: Callable[[], str] = str) -> None:
        super().__init__(api_key=API_KEY)
        self.app = _Leaking(self.app, extra)  # type: ignore[assignment]


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_SEPARATORS = re.compile(r"[\s\-._\u00a0]")
_LABELLED_CVC = re.compile(rf"(?i)(cvc|cvv|security.?code)\W{{0,6}}{CVC}")
_EXPIRY_FORMS = (EXPIRY, f"{EXP_MONTH}/{EXP_YEAR}", f'exp_month": {int(EXP_MONTH)}')


def leaked_in(text: str) -> list[str]:
    """Which of the leaked secrets ``text`` holds: any PAN (however its digits are spaced or
    spelled, JSON-escaped or not), the CVC next to its label or as a field, the expiry, the API
    key."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    found = []
    folded = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    found += [f"PAN {brand}" for brand, pan in PANS.items() if pan in folded]
    if _LABELLED_CVC.search(text) or f'"{CVC}"' in text or f": {CVC}" in text:
        found.append("CVC")
    found += [f"expiry {form}" for form in _EXPIRY_FORMS if form in text]
    if API_KEY in text or API_KEY.removeprefix("ac_test_") in text:
        found.append("API key")
    return found
