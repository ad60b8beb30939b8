"""``agentcard-mcp doctor``: checks the configured issuer without creating anything — the
settings, the key (one read), the mode, the capabilities, the issuer's own limits — and prints
what each tool will do on it (the registry's column for it, as in the README).

Exit 0 when all is well, 1 when the issuer refuses or cannot be reached (one line on stderr, no
traceback), 2 when the configuration itself is wrong (an unknown issuer, a missing key, a live
key without AGENTCARD_LIVE=1, a home or policy file others could change, a bad policy).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

import anyio
import httpx

from ..errors import AgentCardError
from ..issuers import Capability, IssuerLimits, issuer_info
from ..policy import load_policy
from ..redaction import redact_text
from ..settings import Settings, load_settings
from .common import fail

__all__ = ["doctor", "run_doctor"]

OK, ISSUER_PROBLEM, BAD_CONFIG = 0, 1, 2
PREFIX = "agentcard-mcp doctor"


def doctor(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        settings.check()
        # The home and the policy, as every command checks them (reading only).
        load_policy(settings.policy_file, settings.home)
    except AgentCardError as exc:
        fail(PREFIX, exc)
        return BAD_CONFIG
    root = logging.getLogger()
    level = root.level
    if settings.log_level != "DEBUG":
        # The report is the output; retry chatter would bury its one line of failure.
        root.setLevel(logging.ERROR)
    try:
        return anyio.run(run_doctor, settings, sys.stdout, sys.stderr)
    finally:
        root.setLevel(level)


async def run_doctor(
    settings: Settings,
    out: TextIO,
    err: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Checks ``settings``' issuer (reached through ``transport`` when given: a test's fake)
    and reports on ``out``; a failure is one line on ``err``."""
    from ..issuers.connect import open_issuer

    try:
        settings.check()
    except AgentCardError as exc:
        print(f"{PREFIX}: {redact_text(str(exc))}", file=err)
        return BAD_CONFIG
    info = issuer_info(settings.issuer)
    mode = settings.key_mode()
    out.write(f"issuer: {info.name} ({info.title}), {mode} mode\n")
    out.write(f"  API: {settings.issuer_base_url() or 'in process'}\n")
    if info.embedded and not settings.sandbox_db.exists():
        out.write(f"  not created yet: {settings.sandbox_db} is made on the first `serve`\n")
    else:
        try:
            async with open_issuer(settings, transport) as issuer:
                lines = []
                limits = IssuerLimits()
                if Capability.USAGE in issuer.capabilities:  # one read proves the key too
                    limits = await issuer.limits()
                    lines.append("key accepted: it reads the issuer's limits")
                lines += await issuer.probe()
                for line in lines or ["key not checked: the issuer has no read that makes nothing"]:
                    out.write(f"  {line}\n")
        except AgentCardError as exc:
            # Masked: an issuer's message may quote what it was sent.
            print(f"{PREFIX}: {info.name}: {redact_text(str(exc))}", file=err)
            return ISSUER_PROBLEM
        reported = {k: v for k, v in limits.model_dump().items() if v is not None}
        shown = ", ".join(f"{k} {v}" for k, v in reported.items()) or "none reported"
        out.write(f"  the issuer's own limits: {shown}\n")
    out.write(f"  capabilities: {', '.join(sorted(info.capabilities_in(mode)))}\n")
    out.write("tools:\n")
    width = max(len(use.tool) for use in info.tool_uses(mode))
    for use in info.tool_uses(mode):
        said = {"ok": "yes", "not_supported": "no (not_supported)",
                "test_mode_only": "no (test_mode_only: needs a test key)"}[use.code]  # fmt: skip
        note = f" — {use.note}" if use.note and use.code == "ok" else ""
        out.write(f"  {use.tool:<{width}}  {said}{note}\n")
    return OK
