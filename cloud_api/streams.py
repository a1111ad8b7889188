"""Per-device stream sequence numbers: gaps are reported, never silently lost.

Each gateway numbers the distinct readings of each device 1, 2, 3... A jump from 7 to 11 opens
a gap 8-10 ("3 readings missing from this scale"); a late arrival inside a gap shrinks or splits
it. A resend of an already seen number changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.db import Gap, Stream


def record(session: Session, gateway: str, device: str, seqs: Iterable[int], at: datetime
           ) -> None:
    """Account for the sequence numbers of one device seen in one batch."""
    # the row locked (PostgreSQL; SQLite serializes writers anyway): two batches of one device
    # from two intake workers apply one after the other, or a false gap could be reported
    stream = session.get(Stream, (gateway, device), with_for_update=True)
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
