"""E1381 link layer: checksum vectors, frames, receiver and sender state machines."""

from __future__ import annotations

import pytest

from device_drivers.astm import (
    ChecksumError,
    ContentionLost,
    FrameNumberError,
    FrameRejected,
    Link,
    MalformedFrameError,
    MessageDiscarded,
    MessageReceived,
    MessageSent,
    Receiver,
    Sender,
    SendFailed,
    TransferEnded,
    checksum,
    encode_frame,
    encode_message,
    parse_frame,
)

ENQ, ACK, NAK, EOT, STX, ETX, ETB = b"\x05", b"\x06", b"\x15", b"\x04", b"\x02", b"\x03", b"\x17"

MESSAGE = ["H|\\^&|||Analyzer^1|||||||P|1|20240301101500", "P|1||PAT-7",
           "R|1|^^^GLU|5.5|mmol/L||N||F||||20240301101200", "L|1|N"]


# --------------------------------------------------------------- §6.3.3 checksum vectors

@pytest.mark.parametrize(("body", "expected"), [
    (b"1\x03", "34"),  # 0x31 + 0x03
    (b"0\x17", "47"),  # 0x30 + 0x17
    (b"\xff\x02", "01"),  # modulo 256
    (b"1H|\\^&\r\x03", "E5"),  # worked by hand: 0x1E5
    (b"2" + b"z" * 240 + b"\x17", "A9"),  # 50 + 122 * 240 + 23 = 29353 = 114 * 256 + 169
])
def test_checksum_vectors(body: bytes, expected: str) -> None:
    assert checksum(body) == expected


def test_checksum_is_uppercase_hex() -> None:
    assert checksum(b"1\xfa") == "2B"  # 0x31 + 0xFA = 0x12B


def test_frame_layout_follows_6_3_1() -> None:
    frame = encode_frame(1, b"L|1|N\r", final=True)
    assert frame == STX + b"1L|1|N\r" + ETX + checksum(b"1L|1|N\r\x03").encode() + b"\r\n"
    assert parse_frame(frame).text == b"L|1|N\r"


def test_frame_numbers_wrap_modulo_8_starting_at_1() -> None:
    frames = encode_message([f"R|{n}" for n in range(9)])
    assert [f[1:2] for f in frames] == [b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"0", b"1"]


def test_long_record_uses_intermediate_frames() -> None:
    record = "C|1||" + "x" * 500
    frames = encode_message([record])
    assert [f[-5] for f in frames] == [0x17, 0x17, 0x03]
    assert all(len(f) <= 247 for f in frames)
    assert b"".join(parse_frame(f).text for f in frames) == record.encode() + b"\r"


@pytest.mark.parametrize(("raw", "error"), [
    (STX + b"1abc" + ETX + b"00\r\n", ChecksumError),
    (STX + b"8abc" + ETX + b"00\r\n", MalformedFrameError),
    (STX + b"1abc" + b"X00\r\n", MalformedFrameError),
    (STX + b"1a\nbc" + ETX + b"00\r", MalformedFrameError),
    (b"1abc" + ETX + b"00\r\n", MalformedFrameError),
])
def test_parse_frame_rejects(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_frame(raw)


def test_checksum_error_carries_both_values() -> None:
    good = encode_frame(1, b"abc", final=True)
    bad = good[:-4] + b"00\r\n"
    with pytest.raises(ChecksumError) as info:
        parse_frame(bad)
    assert info.value.received == "00"
    assert info.value.computed == good[-4:-2].decode()
    assert info.value.frame == bad


# ------------------------------------------------------------------------ receiver

def _receiver_in_transfer() -> Receiver:
    rx = Receiver()
    rx.feed(ENQ, 0.0)
    assert rx.data_to_send() == ACK
    return rx


def test_reference_transcript() -> None:
    """A glucose result as an instrument sends it, one element per standard section."""
    frames = encode_message(MESSAGE)
    transcript = [
        (ENQ, ACK),  # §6.2 establishment: ENQ answered by ACK
        (frames[0], ACK),  # §6.3.1 frame 1: H record, §6.3.3 checksum
        (frames[1][:-4] + b"00\r\n", NAK),  # §6.5.1 defective frame (bad checksum): NAK
        (frames[1], ACK),  # §6.5.1 retransmitted with the same FN
        (frames[1], ACK),  # §6.3.2 repeat of the last accepted FN: ACK, not kept twice
        (frames[2], ACK),
        (frames[3], ACK),  # end frame of the L record completes the message
        (EOT, b""),  # §6.4 termination
    ]
    rx = Receiver()
    events = []
    for t, (incoming, reply) in enumerate(transcript):
        events += rx.feed(incoming, float(t))
        assert rx.data_to_send() == reply
    received = [e for e in events if isinstance(e, MessageReceived)]
    assert received == [MessageReceived(tuple(MESSAGE))]
    assert [type(e.error) for e in events if isinstance(e, FrameRejected)] == [ChecksumError]
    assert events[-1] == TransferEnded("eot")
    assert rx.idle


def test_out_of_sequence_frame_is_naked() -> None:
    rx = _receiver_in_transfer()
    events = rx.feed(encode_frame(3, b"H|\\^&\r", final=True), 1.0)
    assert rx.data_to_send() == NAK
    assert isinstance(events[0], FrameRejected)
    assert isinstance(events[0].error, FrameNumberError)


def test_frame_zero_is_not_a_repeat_at_start() -> None:
    rx = _receiver_in_transfer()
    rx.feed(encode_frame(0, b"H|\\^&\r", final=True), 1.0)
    assert rx.data_to_send() == NAK


def test_eot_before_terminator_discards_the_message() -> None:
    rx = _receiver_in_transfer()
    for f in encode_message(MESSAGE[:3]):
        rx.feed(f, 1.0)
    events = rx.feed(EOT, 2.0)
    assert MessageDiscarded("eot", 3) in events
    assert not any(isinstance(e, MessageReceived) for e in events)


def test_receiver_timer_discards_after_30_s() -> None:
    rx = _receiver_in_transfer()
    for f in encode_message(MESSAGE[:2]):
        rx.feed(f, 5.0)
    assert rx.deadline == 35.0
    assert rx.poll(34.9) == []
    events = rx.poll(35.0)
    assert MessageDiscarded("timeout", 2) in events
    assert rx.idle


def test_busy_receiver_naks_enq() -> None:
    rx = Receiver()
    rx.busy = True
    rx.feed(ENQ, 0.0)
    assert rx.data_to_send() == NAK
    assert rx.idle


def test_noise_between_frames_and_before_enq_is_ignored() -> None:
    rx = Receiver()
    assert rx.feed(b"\x00garbage" + ACK + NAK + STX + b"1xx", 0.0) == []
    assert rx.data_to_send() == b""
    rx.feed(ENQ, 0.0)
    rx.data_to_send()
    events = []
    for f in encode_message(MESSAGE):
        events += rx.feed(ACK + b"\xffnoise" + f, 1.0)
    assert MessageReceived(tuple(MESSAGE)) in events


def test_stx_inside_a_frame_makes_it_defective() -> None:
    rx = _receiver_in_transfer()
    frame = encode_frame(1, b"H|\\^&\r", final=True)
    events = rx.feed(frame[:4] + STX + frame[1:], 1.0)
    assert rx.data_to_send() == NAK
    assert isinstance(events[0], FrameRejected)


def test_records_before_a_header_are_not_passed_up() -> None:
    rx = _receiver_in_transfer()
    events = []
    for f in encode_message(MESSAGE[2:]):
        events += rx.feed(f, 1.0)
    assert not any(isinstance(e, MessageReceived) for e in events)


def test_one_frame_holding_a_whole_message_is_accepted() -> None:
    rx = _receiver_in_transfer()
    text = ("\r".join(MESSAGE) + "\r").encode()
    events = rx.feed(encode_frame(1, text, final=True), 1.0)
    assert events == [MessageReceived(tuple(MESSAGE))]


# -------------------------------------------------------------------------- sender

def _sender_in_transfer() -> Sender:
    tx = Sender(role="instrument")
    tx.send(MESSAGE)
    tx.poll(0.0)
    assert tx.data_to_send() == ENQ
    tx.feed(ACK, 0.0)
    return tx


def test_sender_sends_frames_then_eot() -> None:
    tx = _sender_in_transfer()
    frames = encode_message(MESSAGE)
    sent = [tx.data_to_send()]
    events = []
    for _ in frames:
        events += tx.feed(ACK, 1.0)
        sent.append(tx.data_to_send())
    assert sent == [*frames, EOT]
    assert events == [MessageSent(tuple(MESSAGE))]
    assert not tx.active


def test_sender_retransmits_same_frame_then_gives_up_after_six_tries() -> None:
    tx = _sender_in_transfer()
    first = tx.data_to_send()
    events = []
    for _ in range(5):
        events += tx.feed(NAK, 1.0)
        assert tx.data_to_send() == first  # §6.5.1 same FN again
    events += tx.feed(NAK, 1.0)
    assert tx.data_to_send() == EOT
    assert isinstance(events[-1], SendFailed)
    assert tx.pending == 0


def test_sender_times_out_after_15_s() -> None:
    tx = _sender_in_transfer()
    tx.data_to_send()
    assert tx.deadline == 15.0
    assert tx.poll(14.0) == []
    events = tx.poll(15.0)
    assert tx.data_to_send() == EOT
    assert events == [SendFailed(tuple(MESSAGE), "no reply within the timeout")]


def test_sender_waits_10_s_after_busy_nak() -> None:
    tx = Sender()
    tx.send(MESSAGE)
    tx.poll(0.0)
    tx.data_to_send()
    tx.feed(NAK, 1.0)
    tx.poll(10.9)
    assert tx.data_to_send() == b""
    tx.poll(11.0)
    assert tx.data_to_send() == ENQ


def test_contention_computer_yields_20_s_and_receives() -> None:
    link = Link(role="computer")
    link.send(["H|\\^&", "L|1|N"])
    link.poll(0.0)
    assert link.data_to_send() == ENQ
    events = link.feed(ENQ, 0.5)  # the instrument's ENQ crosses ours (§6.2.1)
    assert events == [ContentionLost(20.5)]
    assert link.data_to_send() == ACK  # we now receive
    for f in encode_message(MESSAGE):
        link.feed(f, 1.0)
    link.feed(EOT, 1.5)
    link.poll(19.0)
    assert link.data_to_send() == ACK * 4
    link.poll(20.5)
    assert link.data_to_send() == ENQ


def test_contention_instrument_keeps_priority_and_retries_after_1_s() -> None:
    tx = Sender(role="instrument")
    tx.send(MESSAGE)
    tx.poll(0.0)
    tx.data_to_send()
    assert tx.feed(ENQ, 0.2) == []
    tx.poll(1.1)
    assert tx.data_to_send() == b""
    tx.poll(1.2)
    assert tx.data_to_send() == ENQ
