"""Pure parts of the scale-out: shard of a patient, owned sets, routed payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud_api.errors import ConfigError
from cloud_api.sharding import (
    Routed,
    decode_routed,
    encode_routed,
    owns_text,
    parse_owns,
    route,
    shard_of,
    shard_topic,
)
from vigie.contract import Kind, Reading


def _reading(i: int, patient: str | None) -> Reading:
    t = datetime(2026, 11, 1, 10, 0, i, tzinfo=UTC)
    return Reading(id=f"{i:032x}", gateway_id="gw-1", device_id="d1", patient_id=patient,
                   stream_seq=i + 1, kind=Kind.GLUCOSE, value=90.0 + i, unit="mg/dL",
                   measured_at=t, received_at=t, device_time=None, clock_offset_s=0.0,
                   time_zone=None, time_trusted=True)


def test_shard_of_is_stable_across_processes_and_spreads() -> None:
    assert shard_of("p-0412", 16) == shard_of("p-0412", 16) == 7  # pinned: a change re-shards
    counts = [0] * 16
    for i in range(1600):
        counts[shard_of(f"p{i}", 16)] += 1
    assert min(counts) > 60


def test_owned_sets_parse_and_print() -> None:
    assert parse_owns("0-3,8, 9-9", 16) == (0, 1, 2, 3, 8, 9)
    assert owns_text((0, 1, 2, 3, 8, 9)) == "0-3,8-9"
    for bad in ("", "4-2", "0-16", "x"):
        with pytest.raises(ConfigError):
            parse_owns(bad, 16)
    assert shard_topic(16, 3) == "vigie/v1/shards/16/3"


def test_routing_keeps_a_patient_on_one_shard_and_round_trips() -> None:
    readings = [(_reading(i, f"p{i % 3}" if i % 4 else None), "site-1") for i in range(12)]
    parts = route(readings, [], 4)
    assert sum(len(p.readings) for p in parts.values()) == 12
    for part in parts.values():
        back = decode_routed(encode_routed(part))
        assert back.readings == part.readings and back.alarms == []
    owners = {r.patient_id: s for s, p in parts.items() for r, _ in p.readings}
    assert all(shard_of(pid, 4) == s for pid, s in owners.items() if pid)
    assert decode_routed(encode_routed(Routed())).readings == []


def test_a_routed_message_the_broker_refused_is_not_taken_as_delivered() -> None:
    """A PUBACK with a failure code (the ACL) is not a delivery: the intake must not
    acknowledge the gateway's message for it, or the readings would be lost silently. (The
    refusal itself, from a real broker, is in tests/vigie/test_mqtt.py.)"""
    import time

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from cloud_api.sharding import IntakeWorker
    from vigie.mqtt import Delivery, NotConnected, PublishRefused

    refused, lost, taken = (Delivery(None, "vigie/v1/shards/4/1") for _ in range(3))
    refused._resolve(PublishRefused(refused.topic, ReasonCode(PacketTypes.PUBACK,
                                                              identifier=0x87)))
    lost._resolve(NotConnected("connection lost before the PUBACK"))
    taken._resolve(None)
    deadline = time.monotonic() + 1
    assert IntakeWorker._acked(refused, deadline) is False
    assert IntakeWorker._acked(lost, deadline) is False
    assert IntakeWorker._acked(taken, deadline) is True
    assert IntakeWorker._acked(Delivery(None, "t"), time.monotonic()) is False, "no PUBACK"


def test_a_routed_payload_nested_without_end_is_a_contract_error() -> None:
    """Anyone may publish on the shard topics in the plain profile: 10,000 '[' must be a
    refusal the shard worker quarantines, not a RecursionError."""
    from cloud_api.sharding import decode_routed
    from vigie.contract import ContractError

    with pytest.raises(ContractError):
        decode_routed(b"[" * 10_000)
