"""CPU time of this process and, on Linux, of a server process it measures (stdlib only, so
that a benchmark's own floor server can import it without weighing more than a bare server)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

__all__ = ["cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, all threads) of this process plus ``pid``'s, if any."""
    total = time.process_time()
    if pid is not None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
        total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14, 15
    return total
