"""PII redaction for free text, applied before anything is stored.

One combined regular expression, one pass over the text. Matches are replaced by a typed
placeholder (``<email>``, ``<phone>``, ``<card>``, ``<iban>``) so analysts still see *that*
something was there. Card numbers must pass the Luhn check and phone numbers need at least
seven digits, which keeps amounts, dates and ids mostly intact; an IBAN-looking token is
always redacted (over-redacting an id is cheaper than leaking an account number).

Customer ids are not redacted but pseudonymised with a keyed hash (HMAC-SHA256): the same
customer maps to the same token, so complaints per customer stay countable, while an id cannot
be recovered by hashing a list of candidates without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_PATTERN = re.compile(
    # ISO dates/times are matched first only to be left alone (they look like phone numbers).
    r"(?P<date>(?<!\d)\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?(?!\d))"
    r"|(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    # IBAN-like: country code, two check digits, 11-30 alphanumerics (optionally grouped by 4).
    r"|(?P<iban>\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b)"
    # Card: 13-19 digits, optionally separated by single spaces or dashes.
    r"|(?P<card>(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.]))"
    # Phone: optional +country, optional (area), then digit groups separated by space/dot/dash.
    r"|(?P<phone>(?<![\w.])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
    r"\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w.]))"
)
_DIGITS = re.compile(r"\d")
_QUICK = re.compile(r"[@\d]")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group(0)
    if kind == "date":
        return text
    if kind == "card":
        digits = "".join(_DIGITS.findall(text))
        if _luhn_ok(digits):
            return "<card>"
        # Not a card: it may still be a long phone number.
        return "<phone>" if 7 <= len(digits) <= 15 and not text.isdigit() else text
    if kind == "phone":
        n = len(_DIGITS.findall(text))
        if n < 7 or n > 15:
            return text
        # A bare run of digits without any separator or "+" is an id or amount, not a phone.
        if text.isdigit():
            return text
        return "<phone>"
    return f"<{kind}>"


def redact(text: str) -> tuple[str, int]:
    """Return ``(redacted_text, number_of_replacements)``; the text is unchanged when 0."""
    if not text or _QUICK.search(text) is None:
        # Fast path: no digit and no "@" → nothing to redact (most agent text at high rates).
        return text, 0
    count = 0

    def counting(match: re.Match[str]) -> str:
        nonlocal count
        out = _replace(match)
        if out != match.group(0):
            count += 1
        return out

    return _PATTERN.sub(counting, text), count


def redact_opt(text: str | None) -> tuple[str | None, int]:
    if text is None:
        return None, 0
    return redact(text)


def hash_customer_id(customer_id: str, key: bytes) -> str:
    """Stable pseudonym for a customer id: ``"c_" + 32 hex chars`` of HMAC-SHA256."""
    digest = hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()
    return "c_" + digest[:32]
