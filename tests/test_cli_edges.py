"""The edges a newcomer meets first (issue 14): the standalone sandbox's access log, one-line
errors from `demo`, options that do not apply to a transport, the help texts, and the swipe
command's categories. Run for real, as the console script in subprocesses."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.test_cli import serving

pytestmark = pytest.mark.anyio

ACCESS_LINE = re.compile(r'"(GET|POST) (.+?) HTTP/1\.1" (\d{3})')
TEST_PAN = "4111111111111111"  # a well-known test number: must come out masked


async def test_sandbox_serve_logs_one_masked_access_line_per_request_and_no_traceback(
    tmp_path: Path,
) -> None:
    paths = ["/v1/cards", f"/v1/cards/{TEST_PAN}", "/nowhere"]
    with serving(tmp_path / "home", tmp_path) as served:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
            for path in paths:
                await client.get(path)
    stderr = "".join(served.stderr)
    access = [m for line in served.stderr if (m := ACCESS_LINE.search(line))]
    assert [m.group(3) for m in access] == ["401", "401", "404"], stderr
    assert access[1].group(2) == "/v1/cards/•••• 1111"
    assert "Traceback" not in stderr
    assert "Logging error" not in stderr
    assert TEST_PAN not in stderr + "".join(served.stdout)
    assert not ACCESS_LINE.search("".join(served.stdout))  # logs go to stderr, beside the rest
