"""Out-of-band approvals: bound to the exact arguments, single-use, expiring, shared by the server
and the operator's ``approvals`` command through one SQLite file."""

from __future__ import annotations

import hashlib
import io
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcard_mcp.approvals import (
    APPROVAL_TTL,
    Approval,
    ApprovalStore,
    approvals_command,
    digest,
)
from agentcard_mcp.errors import (
    AgentCardError,
    ApprovalDenied,
    ApprovalRequired,
    InvalidParams,
    NotFound,
)
from tests.support import FakeClock

CREATE = {
    "purpose": "flights to Lisbon",
    "daily_limit_cents": 5000,
    "per_auth_max_cents": 5000,
    "mcc_allowlist": ["travel"],
}
SUMMARY = "create_card: daily limit $50.00, per purchase $50.00, categories travel"


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[ApprovalStore]:
    with ApprovalStore(tmp_path, clock=clock) as opened:
        yield opened


def approved(store: ApprovalStore, tool: str = "create_card", **arguments: Any) -> Approval:
    approval = store.request(tool, arguments or CREATE, SUMMARY)
    return store.approve(approval.id)


def code_of(call: Callable[..., object], *args: Any) -> str:
    with pytest.raises(AgentCardError) as caught:
        call(*args)
    return caught.value.code


# --- digest --------------------------------------------------------------------------------


def test_digest_is_sha256_of_canonical_json_of_tool_and_arguments() -> None:
    canonical = (
        '{"arguments":{"daily_limit_cents":5000,"mcc_allowlist":["travel"],'
        '"per_auth_max_cents":5000,"purpose":"flights to Lisbon"},"tool":"create_card"}'
    )
    assert digest("create_card", CREATE) == hashlib.sha256(canonical.encode()).hexdigest()


def test_digest_ignores_key_order_approval_id_idempotency_key_and_nulls() -> None:
    reordered = dict(reversed(list(CREATE.items())))
    repeated = {**CREATE, "approval_id": "apr_x", "idempotency_key": "fresh", "agent_id": None}
    assert digest("create_card", reordered) == digest("create_card", CREATE)
    assert digest("create_card", repeated) == digest("create_card", CREATE)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("set_policy", CREATE),
        ("create_card", {**CREATE, "daily_limit_cents": 5001}),
        ("create_card", {**CREATE, "mcc_allowlist": ["travel", "saas"]}),
        ("create_card", {**CREATE, "single_use": False}),
        ("create_card", {**CREATE, "reason": {"nested": None}}),
    ],
)
def test_digest_changes_with_the_tool_or_any_bound_argument(
    tool: str, arguments: dict[str, Any]
) -> None:
    assert digest(tool, arguments) != digest("create_card", CREATE)


# --- request -------------------------------------------------------------------------------


def test_request_creates_a_pending_approval_that_expires_in_ten_minutes(
    store: ApprovalStore, clock: FakeClock
) -> None:
    approval = store.request("create_card", {**CREATE, "idempotency_key": "k1"}, SUMMARY)
    assert re.fullmatch(r"apr_[a-z0-9]{20}", approval.id)
    assert approval.status == "pending"
    assert approval.digest == digest("create_card", CREATE)
    assert approval.arguments == CREATE  # stored as bound: no idempotency key
    assert approval.summary == SUMMARY
    assert approval.created_at == clock.now
    assert approval.expires_at == clock.now + APPROVAL_TTL == clock.now + timedelta(minutes=10)
    assert approval.decided_at is None
    assert approval.used_at is None
    assert store.get(approval.id) == approval


def test_a_retry_without_approval_id_returns_the_same_pending_request(
    store: ApprovalStore,
) -> None:
    first = store.request("create_card", {**CREATE, "idempotency_key": "k1"}, SUMMARY)
    again = store.request("create_card", {**CREATE, "idempotency_key": "k2"}, SUMMARY)
    other = store.request("create_card", {**CREATE, "daily_limit_cents": 4000}, SUMMARY)
    assert again.id == first.id
    assert other.id != first.id
    assert [a.id for a in store.pending()] == [first.id, other.id]


def test_a_new_request_is_made_once_the_pending_one_expired_or_was_decided(
    store: ApprovalStore, clock: FakeClock
) -> None:
    first = store.request("create_card", CREATE, SUMMARY)
    clock.advance(minutes=10)
    second = store.request("create_card", CREATE, SUMMARY)
    store.deny(second.id)
    third = store.request("create_card", CREATE, SUMMARY)
    assert len({first.id, second.id, third.id}) == 3
    assert [a.id for a in store.pending()] == [third.id]


# --- approve, deny, consume ------------------------------------------------------------------


def test_an_approval_is_consumed_once_and_then_refused(store: ApprovalStore) -> None:
    approval = approved(store)
    assert approval.status == "approved"
    assert approval.decided_at is not None
    repeat = {**CREATE, "approval_id": approval.id, "idempotency_key": "new"}
    used = store.consume(approval.id, "create_card", repeat)
    assert used.status == "used"
    assert used.used_at is not None
    with pytest.raises(ApprovalDenied, match="single-use"):
        store.consume(approval.id, "create_card", repeat)


def test_a_pending_approval_cannot_be_consumed(store: ApprovalStore) -> None:
    approval = store.request("create_card", CREATE, SUMMARY)
    with pytest.raises(ApprovalRequired) as caught:
        store.consume(approval.id, "create_card", CREATE)
    assert f"approvals approve {approval.id}" in caught.value.message
    assert store.get(approval.id).status == "pending"


def test_a_denied_approval_cannot_be_consumed_nor_approved(store: ApprovalStore) -> None:
    approval = store.request("create_card", CREATE, SUMMARY)
    assert store.deny(approval.id).status == "denied"
    assert code_of(store.consume, approval.id, "create_card", CREATE) == "approval_denied"
    assert code_of(store.approve, approval.id) == "invalid_params"
    assert store.get(approval.id).status == "denied"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("create_card", {**CREATE, "daily_limit_cents": 9000}),
        ("create_card", {**CREATE, "mcc_allowlist": None}),
        ("set_policy", CREATE),
    ],
)
def test_other_arguments_are_refused_and_do_not_use_up_the_approval(
    store: ApprovalStore, tool: str, arguments: dict[str, Any]
) -> None:
    approval = approved(store)
    with pytest.raises(ApprovalDenied, match="different arguments"):
        store.consume(approval.id, tool, arguments)
    assert store.get(approval.id).status == "approved"
    assert store.consume(approval.id, "create_card", CREATE).status == "used"


def test_unknown_ids_are_not_found(store: ApprovalStore) -> None:
    assert code_of(store.consume, "apr_" + "0" * 20, "create_card", CREATE) == "not_found"
    assert code_of(store.approve, "apr_nope") == "not_found"
    assert code_of(store.deny, "") == "not_found"
    with pytest.raises(NotFound) as caught:
        store.get("x" * 10_000)
    assert len(caught.value.message) < 200  # an agent-sent id is not echoed whole


def test_deciding_twice_is_refused_saying_so(store: ApprovalStore) -> None:
    approval = approved(store)
    with pytest.raises(InvalidParams, match="already approved"):
        store.approve(approval.id)
    with pytest.raises(InvalidParams, match="already approved"):
        store.deny(approval.id)


# --- expiry --------------------------------------------------------------------------------


def test_an_approval_is_good_for_ten_minutes_after_the_request(
    store: ApprovalStore, clock: FakeClock
) -> None:
    in_time = approved(store)
    too_late = approved(store, daily_limit_cents=4000)
    clock.advance(minutes=9, seconds=59)
    assert store.consume(in_time.id, "create_card", CREATE).status == "used"
    clock.advance(seconds=2)
    assert store.get(too_late.id).status == "expired"
    with pytest.raises(ApprovalDenied, match="expired"):
        store.consume(too_late.id, "create_card", {**CREATE, "daily_limit_cents": 4000})
    assert store.get(in_time.id).status == "used"  # used stays used, not expired


def test_an_expired_request_cannot_be_approved(store: ApprovalStore, clock: FakeClock) -> None:
    approval = store.request("create_card", CREATE, SUMMARY)
    clock.advance(minutes=10, seconds=1)
    assert store.pending() == []
    with pytest.raises(InvalidParams, match="expired"):
        store.approve(approval.id)


# --- elicitation record ----------------------------------------------------------------------


@pytest.mark.parametrize(("accepted", "status"), [(True, "used"), (False, "denied")])
def test_elicited_decisions_are_recorded_and_cannot_be_consumed_again(
    store: ApprovalStore, accepted: bool, status: str
) -> None:
    record = store.record_elicited("close_card", {"card_id": "card_1"}, "close card_1", accepted)
    assert record.status == status
    assert record.decided_at is not None
    assert (record.used_at is not None) is accepted
    assert store.pending() == []
    assert store.all() == [record]
    assert code_of(store.consume, record.id, "close_card", {"card_id": "card_1"}) == (
        "approval_denied"
    )


def test_all_lists_every_status_newest_first(store: ApprovalStore, clock: FakeClock) -> None:
    first = store.request("create_card", CREATE, SUMMARY)
    clock.advance(seconds=1)
    second = store.record_elicited("close_card", {"card_id": "card_1"}, "close card_1", False)
    assert [a.id for a in store.all()] == [second.id, first.id]
    assert [a.id for a in store.all(limit=1)] == [second.id]


# --- persistence and sharing -----------------------------------------------------------------


def test_approvals_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    with ApprovalStore(tmp_path, clock=clock) as before:
        approval = before.request("create_card", CREATE, SUMMARY)
    with ApprovalStore(tmp_path, clock=clock) as operator:
        operator.approve(approval.id)
    with ApprovalStore(tmp_path, clock=clock) as after:
        assert after.consume(approval.id, "create_card", CREATE).status == "used"


def test_the_database_is_private_to_its_owner(tmp_path: Path, store: ApprovalStore) -> None:
    store.request("create_card", CREATE, SUMMARY)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("approvals.db")]
    assert {p.name for p in files} >= {"approvals.db", "approvals.db-wal"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_the_operator_approves_from_another_process_while_the_server_runs(
    tmp_path: Path,
) -> None:
    with ApprovalStore(tmp_path) as server:  # real clock: the other process uses one too
        approval = server.request("create_card", CREATE, SUMMARY)
        script = (
            "import sys; from pathlib import Path; "
            "from agentcard_mcp.approvals import approvals_command; "
            "sys.exit(approvals_command('approve', sys.argv[1], Path(sys.argv[2]), "
            "sys.stdout, sys.stderr))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, approval.id, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"approved {approval.id}" in done.stdout
        assert server.consume(approval.id, "create_card", CREATE).status == "used"


@pytest.mark.parametrize("sharing", ["one store", "a store per thread"])
def test_of_twenty_concurrent_consumes_exactly_one_succeeds(
    tmp_path: Path, store: ApprovalStore, clock: FakeClock, sharing: str
) -> None:
    approval = approved(store)
    stores = [
        store if sharing == "one store" else ApprovalStore(tmp_path, clock=clock) for _ in range(20)
    ]
    start = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def attempt(own: ApprovalStore) -> None:
        start.wait(timeout=10)
        try:
            own.consume(approval.id, "create_card", CREATE)
            outcomes.append("used")
        except AgentCardError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(own,)) for own in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    for own in stores:
        if own is not store:
            own.close()
    assert sorted(outcomes) == ["approval_denied"] * 19 + ["used"]


# --- the operator's command --------------------------------------------------------------------


def run(action: str, approval_id: str | None, home: Path, clock: FakeClock) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    status = approvals_command(action, approval_id, home, out, err, clock=clock)
    return status, out.getvalue() + err.getvalue()


def test_list_says_when_nothing_is_pending(tmp_path: Path, clock: FakeClock) -> None:
    assert run("list", None, tmp_path, clock) == (0, "no pending approvals\n")


def test_list_shows_id_tool_summary_and_time_left(
    tmp_path: Path, store: ApprovalStore, clock: FakeClock
) -> None:
    approval = store.request("create_card", CREATE, SUMMARY)
    clock.advance(minutes=2, seconds=30)
    status, text = run("list", None, tmp_path, clock)
    assert status == 0
    first, second = text.splitlines()
    assert first == f"{approval.id}  create_card  expires in 07:30  {SUMMARY}"
    assert second.startswith('    arguments: {"daily_limit_cents":5000,')


def test_list_escapes_terminal_control_characters_from_the_agent(
    tmp_path: Path, store: ApprovalStore, clock: FakeClock
) -> None:
    store.request("create_card", {"purpose": "x\x1b[2K\u202e"}, "create_card: x\x1b[2K\u202e")
    status, text = run("list", None, tmp_path, clock)
    assert status == 0
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\\x1b[2K\\u202e" in text


def test_approve_and_deny_from_the_command_line(
    tmp_path: Path, store: ApprovalStore, clock: FakeClock
) -> None:
    yes = store.request("create_card", CREATE, SUMMARY)
    no = store.request("close_card", {"card_id": "card_1"}, "close_card: card_1")
    status, text = run("approve", yes.id, tmp_path, clock)
    assert status == 0
    assert text.startswith(f"approved {yes.id}: {SUMMARY}\n")
    assert run("deny", no.id, tmp_path, clock) == (0, f"denied {no.id}: close_card: card_1\n")
    assert store.get(yes.id).status == "approved"
    assert store.get(no.id).status == "denied"


def test_the_command_refuses_unknown_expired_and_decided_ids(
    tmp_path: Path, store: ApprovalStore, clock: FakeClock
) -> None:
    decided = approved(store)
    expiring = store.request("close_card", {"card_id": "card_1"}, "close_card: card_1")
    assert run("deny", decided.id, tmp_path, clock)[0] == 2
    assert "not_found" in run("approve", "apr_unknown", tmp_path, clock)[1]
    clock.advance(minutes=11)
    status, text = run("approve", expiring.id, tmp_path, clock)
    assert (status, "expired" in text) == (2, True)
    assert run("approve", None, tmp_path, clock)[0] == 2
    assert run("frobnicate", None, tmp_path, clock)[0] == 2
