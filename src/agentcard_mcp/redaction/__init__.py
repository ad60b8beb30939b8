"""Card data and secrets are masked before anything leaves the server (DESIGN §6).

Pure functions, applied once at the output boundary (``CardServer.call_tool``, the audit log,
the approvals store, logging, the CLI's printed errors):

- ``redact(value)`` walks JSON-shaped data (dicts, lists, strings, numbers) at any depth, keys
  included, and returns the *same object* when there is nothing to mask (``structure``).
- ``redact_text(text)`` masks one string (``text``).

What is masked, and how:

- **PANs** (``pans``; the brands' ranges and lengths in ``card_brands``): digit groups with any
  punctuation or whitespace between them, several characters of it too; a PAN glued to its CVC
  or expiry, or zero-padded; fullwidth and other Unicode digits (NFKC), zero-width characters
  between them, JSON escapes; JSON numbers; a PAN split over a list's neighbouring items, a
  dict's neighbouring values, or a key and its value. Mask: ``•••• 4242`` (the last four, as
  every issuer shows).
- **Card fields by name** — number, pan, card_number, cvc, cvv, cvv2, cvc2, csc,
  security_code, exp, exp_month, exp_year, exp_date, expiry*, expiration*, valid_thru (any
  case, camelCase, dashes): the whole value becomes ``••••`` (``•••• 4242`` if it was a PAN).
  In free text, a CVC or expiry after its label; a year alone is no expiry (``text``).
- **Secrets** — issuer keys (``ac_live_``, ``ac_test_``, ``ak_``, ``clw_``, ``lk_``, ``sk_``,
  ``rk_``, ``whsec_``), our own ``amcp_`` keys, and ``Bearer`` tokens: ``••••``.

Linear time: every pattern is a single character-class repetition or bounded, with no nested
quantifiers; the work per digit group is bounded, and past a budget per text (or a run, chain
or piece no real result holds) the rest is masked whole: fail closed. The quick check that
clean text passes (``quick``) is one search of a finite-automaton engine, linear by design.
"""

from __future__ import annotations

from ..card_brands import is_pan
from .logs import RedactingFilter, install_log_redaction, scrub_record
from .pans import MASK, mask_pan
from .structure import clean_json_text, is_card_field, redact, redact_quoting
from .text import redact_text

__all__ = [
    "MASK",
    "RedactingFilter",
    "clean_json_text",
    "install_log_redaction",
    "is_card_field",
    "is_pan",
    "mask_pan",
    "redact",
    "redact_quoting",
    "redact_text",
    "scrub_record",
]
