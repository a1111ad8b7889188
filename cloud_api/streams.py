"""Per-device stream sequence numbers: gaps are reported, never silently lost.

Each gateway numbers the distinct readings of each device 1, 2, 3... A jump from 7 to 11 opens
a gap 8-10 ("3 readings missing from this scale"); a late arrival inside a gap shrinks or splits
it. A resend of an already seen number changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from cloud_api.db import Gap, Stream

CHUNK = 500  # streams per IN (...) query


def record_batch(session: Session, seqs: Mapping[tuple[str, str], Iterable[int]],
                 at: datetime) -> None:
    """``record`` for every (gateway, device) of a batch, their rows read in one query per
    ``CHUNK`` streams instead of one each."""
    keys = sorted(seqs)
    known: dict[tuple[str, str], Stream] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        # rows locked as ``record`` locks them, in key order so that two workers cannot
        # deadlock on each other's rows (PostgreSQL; SQLite has one writer anyway)
        known.update(((s.gateway_id, s.device_id), s) for s in session.scalars(
            select(Stream).where(tuple_(Stream.gateway_id, Stream.device_id).in_(chunk))
            .order_by(Stream.gateway_id, Stream.device_id).with_for_update()))
    for key, numbers in seqs.items():
        _record(session, key[0], key[1], known.get(key), numbers, at)


def record(session: Session, gateway: str, device: str, seqs: Iterable[int], at: datetime
           ) -> None:
    """Account for the sequence numbers of one device seen in one batch."""
    # the row locked (PostgreSQL; SQLite serializes writers anyway): two batches of one device
    # from two intake workers apply one after the other, or a false gap could be reported
    stream = session.get(Stream, (gateway, device), with_for_update=True)
    _record(session, gateway, device, stream, seqs, at)


def _record(session: Session, gateway: str, device: str, stream: Stream | None,
            seqs: Iterable[int], at: datetime) -> None:
    if stream is None:
        stream = Stream(gateway_id=gateway, device_id=device, high_seq=0, last_seen=at)
        session.add(stream)
    stream.last_seen = at
    for seq in sorted(set(seqs)):
        if seq > stream.high_seq:
            if seq > stream.high_seq + 1:
                session.add(Gap(gateway_id=gateway, device_id=device,
                                first_seq=stream.high_seq + 1, last_seq=seq - 1, detected_at=at))
            stream.high_seq = seq
        else:
            _fill(session, gateway, device, seq)


def _fill(session: Session, gateway: str, device: str, seq: int) -> None:
    gap = session.scalars(select(Gap).where(
        Gap.gateway_id == gateway, Gap.device_id == device, Gap.first_seq <= seq,
        Gap.last_seq >= seq)).first()
    if gap is None:
        return  # a resend of a number already seen
    if gap.first_seq == gap.last_seq:
        session.delete(gap)
    elif seq == gap.first_seq:
        gap.first_seq += 1
    elif seq == gap.last_seq:
        gap.last_seq -= 1
    else:
        session.add(Gap(gateway_id=gateway, device_id=device, first_seq=seq + 1,
                        last_seq=gap.last_seq, detected_at=gap.detected_at))
        gap.last_seq = seq - 1


def open_gaps(session: Session) -> list[Gap]:
    return list(session.scalars(select(Gap).order_by(Gap.gateway_id, Gap.device_id,
                                                      Gap.first_seq)))
