"""Cancel and deadline logic without a network: the rollout table's cancel/error transitions,
the file deadline formula, the cancel token."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edge_agent.config import UpdatesConfig
from edge_agent.updates import errors as E
from edge_agent.updates import rollout as R
from edge_agent.updates.cancel import Cancel
from edge_agent.updates.fetch import _Deadline
from edge_agent.updates.keys import TrustStore
from edge_agent.updates.state import Deployment
from edge_agent.updates.store import Store
from edge_agent.updates.updater import Updater


def rollout_in(state: str) -> R.Rollout:
    return R.Rollout(Deployment("d", "demo", "2", "file:///r", state=state))


@pytest.mark.parametrize("state", R.BEFORE_SWAP)
def test_cancel_before_the_swap_ends_cancelled_and_final(state: str) -> None:
    r = rollout_in(state)
    d = r.handle("cancel", reason="cancelled", detail="operator cancel")
    assert d.state == R.CANCELLED and d.final and not d.sent
    assert R.record(d)["reason"] == "cancelled"
    with pytest.raises(R.IllegalTransition):
        r.handle("accepted")  # final: nothing more happens to it


@pytest.mark.parametrize("state", [R.ACTIVATING, R.TRIAL, *sorted(R.FINAL)])
def test_cancel_is_not_a_transition_once_swapped_or_final(state: str) -> None:
    # after the swap a cancel is a trial rollback ("unhealthy"), never "cancelled"
    with pytest.raises(R.IllegalTransition, match="'cancel' is not allowed"):
        rollout_in(state).handle("cancel")
    assert (R.TRIAL, "unhealthy") in R.TRANSITIONS


@pytest.mark.parametrize("state", R.BEFORE_SWAP)
def test_an_error_before_the_swap_fails_the_rollout(state: str) -> None:
    # disk_full can hit while installing (verifying) as well as while downloading
    d = rollout_in(state).handle("error", reason="disk_full")
    assert d.state == R.FAILED and d.final


def test_cancelled_is_a_final_state_of_the_table() -> None:
    assert R.CANCELLED in R.STATES and R.CANCELLED in R.FINAL
    assert not any(s == R.CANCELLED for (s, _ev) in R.TRANSITIONS)


def test_file_deadline_is_base_plus_size_over_min_rate(tmp_path: Path) -> None:
    cfg = UpdatesConfig()
    assert (cfg.download_timeout_s, cfg.min_rate_bytes_s) == (60.0, 16 * 1024)
    up = Updater(cfg, Store(tmp_path), TrustStore({}), publish=lambda r: None)
    assert up.file_deadline_s(0) == 60.0
    assert up.file_deadline_s(64 * 1024 * 1024) == 60.0 + 4096.0
    slow = Updater(UpdatesConfig(download_timeout_s=5, min_rate_bytes_s=100), Store(tmp_path),
                   TrustStore({}), publish=lambda r: None)
    assert slow.file_deadline_s(1000) == 15.0


def test_deadline_past_raises_download_timeout_naming_the_settings() -> None:
    dl = _Deadline("http://r/x", 0.0, None)
    with pytest.raises(E.DownloadTimeout, match=r"within its 0 s deadline \(7 bytes received\)"
                       r".*download_timeout_s, min_rate_bytes_s"):
        dl.check(7)
    assert E.DownloadTimeout.reason == "download_timeout"
    assert _Deadline("http://r/x", None, None).read_timeout(30.0) == 30.0


def test_cancel_wins_over_the_deadline_and_keeps_its_first_reason() -> None:
    c = Cancel()
    c.cancel("rollback", "operator rollback")
    c.cancel("shutdown")
    assert (c.reason, c.detail) == ("rollback", "operator rollback")
    with pytest.raises(E.DownloadCancelled, match="cancelled by a rollback command") as ei:
        _Deadline("http://r/x", 0.0, c).check()
    assert ei.value.why == "rollback" and ei.value.reason == "cancelled"


def test_cancel_shuts_down_a_socket_registered_before_or_after() -> None:
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        tok = Cancel()
        tok.register(a)
        tok.cancel("cancel")
        assert a.recv(1) == b""  # a blocked reader would wake up with end-of-stream
        tok.register(c)  # registered after the cancel: shut down at once
        assert c.recv(1) == b""
    finally:
        for s in (a, b, c, d):
            s.close()
