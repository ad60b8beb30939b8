"""The README's table of what each tool does on each issuer, generated from the registry.

    python -m agentcard_mcp.issuers.table --write README.md   # regenerate the table in place
    python -m agentcard_mcp.issuers.table                     # print it

A test checks that the README's table is this one, so the registry and the README cannot drift.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import REGISTRY, TOOLS, IssuerInfo

__all__ = ["BEGIN", "END", "markdown_table", "replace_table"]

BEGIN = "<!-- issuer-table: generated from issuers/__init__.py; do not edit by hand -->"
END = "<!-- /issuer-table -->"


def _keys(prefixes: tuple[str, ...]) -> str:
    return ", ".join(f"`{p}…`" for p in prefixes) or "none"


def _header(info: IssuerInfo) -> str:
    return f"`{info.auth_header}: {info.auth_scheme}…`"


def markdown_table() -> str:
    infos = list(REGISTRY.values())
    rows = [
        ["", *(f"`{i.name}`" for i in infos)],
        ["---"] * (len(infos) + 1),
    ]
    # A live key is the stricter case: it shows which tools need a test key.
    for tool, capability in TOOLS:
        rows.append([f"`{tool}`", *(i.tool_use(tool, capability, "live").cell() for i in infos)])
    rows.append(["API", *(i.title for i in infos)])
    rows.append(["key header", *("—" if i.embedded else _header(i) for i in infos)])
    rows.append(["base URL", *(i.default_base_url or "in process" for i in infos)])
    rows.append(["test keys", *("—" if i.embedded else _keys(i.test_key_prefixes) for i in infos)])
    rows.append(["live keys", *("—" if i.embedded else _keys(i.live_key_prefixes) for i in infos)])
    rows.append(["available", *("yes" if i.adapter else "not yet" for i in infos)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def replace_table(text: str) -> str:
    """``text`` with the block between ``BEGIN`` and ``END`` replaced by the table."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"no {BEGIN!r} … {END!r} block")
    return f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentcard_mcp.issuers.table")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the table in it")
    args = parser.parse_args(argv)
    if args.write is None:
        print(markdown_table())
        return 0
    args.write.write_text(replace_table(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
