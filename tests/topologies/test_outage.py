"""Splitting an outage into Redis's share and the client's (pure, no Redis)."""
from __future__ import annotations

import math

import pytest

from topologies.outage import client_share, spread


def test_outage_splits_into_server_and_client_share() -> None:
    got = client_share(kill_t=100.0, promoted_t=102.25, first_ok_t=102.5)
    assert got == pytest.approx({"outage_s": 2.5, "server_s": 2.25, "client_s": 0.25})
    assert got["server_s"] is not None and got["client_s"] is not None
    assert got["server_s"] + got["client_s"] == pytest.approx(got["outage_s"])


def test_write_acknowledged_before_the_observed_announcement_is_all_server_time() -> None:
    # the client asked a Sentinel that switched 3 ms before our pub/sub message arrived
    got = client_share(kill_t=10.0, promoted_t=12.003, first_ok_t=12.0)
    assert got == pytest.approx({"outage_s": 2.0, "server_s": 2.0, "client_s": 0.0})


def test_no_promotion_leaves_both_shares_unknown() -> None:
    assert client_share(0.0, None, 3.0) == {"outage_s": 3.0, "server_s": None, "client_s": None}


def test_no_acknowledged_write_leaves_the_outage_and_client_share_unknown() -> None:
    assert client_share(0.0, 2.0, None) == {"outage_s": None, "server_s": 2.0, "client_s": None}


@pytest.mark.parametrize("promoted, ok", [(9.0, 12.0), (11.0, 9.5)])
def test_timestamps_before_the_fault_are_refused(promoted: float, ok: float) -> None:
    with pytest.raises(ValueError, match="before kill_t=10"):
        client_share(10.0, promoted, ok)


def test_non_finite_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="not a finite timestamp"):
        client_share(0.0, math.inf, 1.0)


def test_spread_ignores_unknown_values_and_counts_them() -> None:
    assert spread([0.3, None, 0.1, 0.2]) == {"median": 0.2, "min": 0.1, "max": 0.3, "n": 3, "missing": 1}
    assert spread([None]) == {"median": None, "min": None, "max": None, "n": 0, "missing": 1}
