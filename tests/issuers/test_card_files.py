"""Card files (issuers/card_files.py): full card details go to <home>/cards/<id>.json, mode
0600, created exclusively and never through a link; nothing else keeps or shows them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agentcard_mcp.errors import InvalidParams
from agentcard_mcp.issuers import card_files

PAN, CVV = "4242424242424242", "917"


def answer() -> dict[str, Any]:
    """A ClawdCards-shaped answer and a Proxy-shaped one, merged: details at two depths."""
    return {
        "card": {"number": PAN, "cvv": CVV, "expiry": "12/29", "spending_limit": 100},
        "transaction_id": "txn_1",
        "expirationMonth": "12",
        "expirationYear": "2029",
        "last4": "4242",
    }


def test_take_details_leaves_nothing_sensitive_in_the_answer() -> None:
    raw = answer()
    details = card_files.take_details(raw)
    assert raw == {"card": {"spending_limit": 100}, "transaction_id": "txn_1", "last4": "4242"}
    assert details.last4 == "4242"
    assert PAN not in repr(details)
    assert CVV not in str(details)
    assert repr(details) == "CardDetails(•••• 4242)"


def test_written_file_is_0600_in_a_0700_dir_and_holds_the_details(tmp_path: Path) -> None:
    raw = answer()
    details = card_files.take_details(raw)
    path = card_files.write(tmp_path, "txn_1", "clawdcards", details, [("expires_at", "x")])
    assert path == tmp_path / "cards" / "txn_1.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["number"] == PAN
    assert saved["cvv"] == CVV
    assert saved["expirationMonth"] == "12"
    assert saved["expires_at"] == "x"
    assert (saved["issuer"], saved["card_id"], saved["last4"]) == ("clawdcards", "txn_1", "4242")
    assert not details  # handed over: the object no longer holds them


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    card_files.check_dir(tmp_path)
    existing = tmp_path / "cards" / "txn_1.json"
    existing.write_text("keep")
    with pytest.raises(FileExistsError) as info:
        card_files.write(tmp_path, "txn_1", "clawdcards", card_files.take_details(answer()))
    assert PAN not in str(info.value)
    assert existing.read_text() == "keep"


def test_a_link_planted_at_the_file_is_not_followed(tmp_path: Path) -> None:
    card_files.check_dir(tmp_path)
    target = tmp_path / "elsewhere.json"
    (tmp_path / "cards" / "txn_1.json").symlink_to(target)
    with pytest.raises(FileExistsError):
        card_files.write(tmp_path, "txn_1", "clawdcards", card_files.take_details(answer()))
    assert not target.exists()


def test_a_cards_dir_that_is_a_link_is_refused_naming_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "cards").symlink_to(real)
    with pytest.raises(InvalidParams) as info:
        card_files.write(tmp_path, "txn_1", "proxy", card_files.take_details(answer()))
    assert str(tmp_path / "cards") in str(info.value)
    assert "symbolic link" in str(info.value)
    assert list(real.iterdir()) == []


def test_a_cards_dir_open_to_others_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir(mode=0o755)
    os.chmod(tmp_path / "cards", 0o755)
    with pytest.raises(InvalidParams, match="chmod 700"):
        card_files.check_dir(tmp_path)


@pytest.mark.parametrize("card_id", ["../escape", "a/b", "", "x" * 65, "nul\0"])
def test_a_card_id_that_cannot_name_a_file_is_refused(tmp_path: Path, card_id: str) -> None:
    with pytest.raises(InvalidParams):
        card_files.write(tmp_path, card_id, "proxy", card_files.take_details(answer()))
    assert not (tmp_path / "cards").exists() or list((tmp_path / "cards").iterdir()) == []


def test_masked_shows_only_the_last_four() -> None:
    assert card_files.masked("4242") == "•••• 4242"
    assert card_files.masked(None) == "••••"
