"""A command's start-up without the cyclic garbage collector running.

An MCP host spawns ``agentcard-mcp`` for every session, and most of a spawn's start is imports
and the tools' schemas: some hundred thousand objects (modules, classes, validators) that live
as long as the process. While they are made, the collector keeps walking all of them again —
about a tenth of the start. So ``main`` pauses it (``pause``) until the command starts its work
(``started``). A server freezes what start-up made first (``gc.freeze``): later collections
skip it, and the cycles start-up left behind (some 4 000 objects, under 1 MB) are kept rather
than paying a full walk for them. Another command just turns the collector back on: its own
objects are left to it, and so are those of a process that calls ``main`` as a function (a
test).
"""

from __future__ import annotations

import gc

__all__ = ["pause", "started"]

_paused = False


def pause() -> None:
    """Start-up begins: the collector is off until ``started`` (left alone if something else
    has turned it off)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def started(*, serving: bool = False) -> None:
    """Start-up is over: the collector is back on; ``serving``: what start-up made is frozen
    first. Once only; nothing when ``pause`` did not turn it off."""
    global _paused
    if not _paused:
        return
    _paused = False
    if serving:
        gc.freeze()
    gc.enable()
