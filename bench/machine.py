"""What every benchmark prints around its figures: the machine's load, the SDK's version, a
target's verdict (stdlib only, like process_cpu, so a floor server may import it too)."""

from __future__ import annotations

import os
from importlib.metadata import version

__all__ = ["load_average", "mcp_version", "verdict"]


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def mcp_version() -> str:
    return version("mcp")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
