"""The operator's terminal commands: ``policy``, ``approvals``, ``keys`` and ``audit``, each
run on the configured state and printed by the module that owns it."""

from __future__ import annotations

import argparse
import sys

from ..settings import load_settings
from .common import fail, with_storage

__all__ = ["operator_command"]


def operator_command(args: argparse.Namespace) -> int:
    """policy, approvals and audit: the operator's commands, run in the operator's terminal."""
    from ..errors import AgentCardError

    try:
        settings = load_settings()
    except AgentCardError as exc:
        fail("agentcard-mcp", exc)
        return 2
    if args.command == "policy":
        from ..policy import policy_command

        return policy_command(
            args.action, args.file, settings.home, settings.policy_file, sys.stdout, sys.stderr
        )
    if args.command == "approvals":
        from ..approvals import approvals_command

        approval_id = getattr(args, "approval_id", None)
        return with_storage(
            settings,
            f"agentcard-mcp approvals {args.action}",
            2,
            lambda storage: approvals_command(
                args.action,
                approval_id,
                storage.approvals,
                sys.stdout,
                sys.stderr,
                keys=storage.keys,
            ),
        )
    if args.command == "keys":
        from ..keys import keys_command

        return with_storage(
            settings,
            f"agentcard-mcp keys {args.action}",
            2,
            lambda storage: keys_command(
                args.action,
                storage.keys,
                sys.stdout,
                sys.stderr,
                name=getattr(args, "name", None),
                scope=getattr(args, "scope", "cards:write"),
                rate=getattr(args, "rate", 60),
                allow_in_band_approval=getattr(args, "allow_in_band_approval", False),
                key_id=getattr(args, "key_id", None),
            ),
        )
    from ..audit import audit_command

    return with_storage(
        settings,
        "agentcard-mcp audit",
        1,
        lambda storage: audit_command(args.action, args.n, storage.audit, sys.stdout, sys.stderr),
    )
