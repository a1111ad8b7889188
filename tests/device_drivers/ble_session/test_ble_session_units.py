"""Pure pieces of the BLE sessions: backoff by error kind, record batches and contexts."""

from __future__ import annotations

from datetime import datetime

import pytest

from device_drivers.ble.characteristics import decode_characteristic
from device_drivers.ble.glucose import decode_glucose_context
from device_drivers.ble.session import Backoff, BackoffPolicy, BackoffRule, ErrorKind, profile_of
from device_drivers.ble.sessions.device import _RecordBatch
from firmware_sim.ble import encode_glucose_context, encode_glucose_measurement

pytestmark = pytest.mark.timeout(10)

T = datetime(2026, 3, 14, 9, 0)


def test_backoff_grows_by_kind_caps_and_resets() -> None:
    policy = BackoffPolicy(gone=BackoffRule(0.5, 2.0), timeout=BackoffRule(2.0, 300.0),
                           jitter=0.0)
    backoff = Backoff(policy)
    assert [backoff.failed(ErrorKind.TIMEOUT) for _ in range(3)] == [2.0, 4.0, 8.0]
    backoff.succeeded()
    assert [backoff.failed(ErrorKind.GONE) for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert BackoffPolicy().protocol.first_s > BackoffPolicy().timeout.first_s


def test_backoff_jitter_stays_within_its_fraction() -> None:
    low = Backoff(BackoffPolicy(jitter=0.2), rnd=lambda: 0.0).failed(ErrorKind.TIMEOUT)
    high = Backoff(BackoffPolicy(jitter=0.2), rnd=lambda: 1.0).failed(ErrorKind.TIMEOUT)
    assert (low, high) == pytest.approx((1.6, 2.4))


def measurement(seq: int, mg_dl: float, context: bool = False) -> bytes:
    return encode_glucose_measurement(sequence=seq, base_time=T, concentration=mg_dl / 100000,
                                      context_follows=context)


def test_record_batch_waits_for_a_following_context_and_merges_it() -> None:
    batch = _RecordBatch(committed=4)
    batch.add(decode_characteristic(0x2A18, measurement(4, 90)))  # already committed
    batch.add(decode_characteristic(0x2A18, measurement(5, 100)))
    batch.add(decode_characteristic(0x2A18, measurement(6, 110, context=True)))
    ready, last = batch.take(final=False)
    assert [o.sequence for o in ready] == [5] and last == 5  # 6 waits for its context
    context = encode_glucose_context(sequence=6, meal=1)
    batch.contexts.append(decode_glucose_context(context))
    ready, last = batch.take(final=False)
    assert [o.sequence for o in ready] == [6] and last == 6
    assert "meal_preprandial" in ready[0].flags


def test_profile_of_advertised_services() -> None:
    assert profile_of(["0000180F-0000-1000-8000-00805F9B34FB",
                       "00001808-0000-1000-8000-00805f9b34fb"]) == "glucometer"
    assert profile_of(["0000180f-0000-1000-8000-00805f9b34fb"]) is None
