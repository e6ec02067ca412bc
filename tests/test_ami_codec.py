"""AMI framing against the real Asterisk 22 captures, chunked every way, and fuzzed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccserver.pbx.asterisk.ami_codec import (
    MAX_MESSAGE,
    AmiParser,
    BadFrame,
    Banner,
    Item,
    Message,
    encode,
)

from captures import ASTERISK_CAPTURES, ASTERISK_CCSERVER_CAPTURES

FIXTURES = ASTERISK_CAPTURES
#: every AMI stream Asterisk sent: the lab's and ccserver's own sessions
CAPTURES = sorted(p for p in FIXTURES.glob("*.in.raw") if ".agi." not in p.name) + sorted(
    ASTERISK_CCSERVER_CAPTURES.glob("*.ami*.in.raw"))
#: and every stream of actions ccserver (or the lab's client) sent
ACTIONS = sorted(p for p in FIXTURES.glob("*.out.raw") if ".agi." not in p.name) + sorted(
    ASTERISK_CCSERVER_CAPTURES.glob("*.ami*.out.raw"))


def _norm(items: list[Item]) -> list[object]:
    """Comparable form: a Message compares by its ordered headers, repeated ones included."""
    out: list[object] = []
    for it in items:
        if isinstance(it, Message):
            out.append(("msg", tuple(it.items()), tuple(sorted((k, tuple(v)) for k, v in it.multi.items()))))
        else:
            out.append(it)
    return out


def _whole(raw: bytes) -> list[Item]:
    return AmiParser().feed(raw)


def test_captures_are_there() -> None:
    assert len(CAPTURES) >= 24 and len(ACTIONS) >= 24


def plain_split(raw: bytes, banner: bool) -> list[dict[str, list[str]]]:
    """The reference the parser is checked against, in a few lines of plain splitting: the
    banner line, then blocks ending in an empty line, each line ``Key: Value`` (``Key:`` alone
    is an empty value), every value of a repeated key kept in order."""
    text = raw.decode("utf-8")
    if banner:
        text = text.split("\r\n", 1)[1]
    out = []
    for block in text.split("\r\n\r\n"):
        headers: dict[str, list[str]] = {}
        for line in filter(None, block.split("\r\n")):
            key, _, value = line.partition(": ") if ": " in line else line.partition(":")
            headers.setdefault(key, []).append(value)
        if headers:
            out.append(headers)
    return out


def _as_lists(items: list[Item]) -> list[dict[str, list[str]]]:
    return [{k: m.values_of(k) for k in m} for m in items if isinstance(m, Message)]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_header_of_every_event_is_read_as_plain_splitting_reads_it(path: Path) -> None:
    raw = path.read_bytes()
    assert _as_lists(_whole(raw)) == plain_split(raw, banner=True)


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: p.name)
def test_every_action_sent_is_read_as_plain_splitting_reads_it(path: Path) -> None:
    raw = path.read_bytes()
    items = AmiParser(expect_banner=False).feed(raw)
    assert not [i for i in items if isinstance(i, BadFrame)]
    assert _as_lists(items) == plain_split(raw, banner=False)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_the_raw_file_is_the_timelines_reads_put_together(path: Path) -> None:
    """The .jsonl timeline (what replays and golden tests read) holds the same bytes, both ways."""
    jsonl = path.with_name(path.name.replace(".in.raw", ".jsonl"))
    reads = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    for direction in ("in", "out"):
        joined = "".join(r["data"] for r in reads if r["dir"] == direction).encode("latin-1")
        assert joined == path.with_name(path.name.replace(".in.raw", f".{direction}.raw")).read_bytes()


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_parses_cleanly(path: Path) -> None:
    items = _whole(path.read_bytes())
    assert isinstance(items[0], Banner) and items[0].version == "11.0.0"
    assert not [i for i in items if isinstance(i, BadFrame)]
    assert all(isinstance(i, Message) for i in items[1:])


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_real_tcp_chunks_give_the_same_messages(path: Path) -> None:
    """The .jsonl keeps the real recv() boundaries (messages split across reads)."""
    parser = AmiParser()
    items: list[Item] = []
    jsonl = path.with_name(path.name.replace(".in.raw", ".jsonl"))
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["dir"] == "in":
            items += parser.feed(rec["data"].encode("latin-1"))
    assert _norm(items) == _norm(_whole(path.read_bytes()))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_random_chunking_gives_the_same_messages(path: Path, data: st.DataObject) -> None:
    raw = path.read_bytes()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=60)))
    parser = AmiParser()
    items: list[Item] = []
    prev = 0
    for cut in [*cuts, len(raw)]:
        items += parser.feed(raw[prev:cut])
        prev = cut
    assert _norm(items) == _norm(_whole(raw))


def test_utf8_character_split_between_two_feeds_survives() -> None:
    raw = "Event: Newchannel\r\nCallerIDName: Zoë\r\nChannel: PJSIP/carrier-1\r\n\r\n".encode()
    split = raw.index("ë".encode()) + 1  # between 0xC3 and 0xAB
    parser = AmiParser(expect_banner=False)
    assert parser.feed(raw[:split]) == []
    (msg,) = parser.feed(raw[split:])
    assert isinstance(msg, Message) and msg["CallerIDName"] == "Zoë"


def test_invalid_utf8_becomes_replacement_not_loss() -> None:
    (msg,) = AmiParser(expect_banner=False).feed(b"Event: X\r\nName: Zo\xc3\r\n\r\n")
    assert isinstance(msg, Message) and msg["Name"] == "Zo\ufffd"


def test_bad_frame_is_reported_and_parsing_continues() -> None:
    items = AmiParser(expect_banner=False).feed(
        b"Event: A\r\n\r\nthis is not AMI\r\n\r\nEvent: B\r\n\r\n"
    )
    assert [type(i) for i in items] == [Message, BadFrame, Message]
    assert isinstance(items[2], Message) and items[2]["Event"] == "B"


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=30), banner=st.booleans())
def test_arbitrary_bytes_never_raise(chunks: list[bytes], banner: bool) -> None:
    parser = AmiParser(expect_banner=banner)
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, (Message, Banner, BadFrame))


def test_buffer_is_bounded_for_a_peer_that_never_ends_its_frame() -> None:
    parser = AmiParser(expect_banner=False)
    items: list[Item] = []
    chunk = b"X-Junk: " + b"a" * 65536
    for _ in range(MAX_MESSAGE // len(chunk) + 2):
        items += parser.feed(chunk)
        assert len(parser._buf) <= MAX_MESSAGE + len(chunk)
    assert any(isinstance(i, BadFrame) and i.reason == "message too large" for i in items)
    # and the parser recovers for the next well-formed message
    (msg,) = parser.feed(b"\r\n\r\nEvent: Ok\r\n\r\n")[-1:]
    assert isinstance(msg, Message) and msg["Event"] == "Ok"


def test_a_banner_that_never_comes_is_bounded() -> None:
    items = AmiParser().feed(b"x" * 2000)
    assert [type(i) for i in items] == [BadFrame]


@pytest.mark.parametrize(
    "pairs",
    [
        [("Action", "Originate"), ("Channel", "PJSIP/1001\r\nAction: Command")],
        [("Action", "Setvar"), ("Value", "x\nCommand: core stop now")],
        [("Action", "Setvar"), ("Value", "x\r")],
        [("Action", "Ping"), ("Evil\r\nAction", "Command")],
        [("Action", "Ping"), ("A: B", "c")],
    ],
)
def test_encode_refuses_header_injection(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        encode(pairs)


_key = st.text(
    st.characters(blacklist_characters="\r\n:", blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
    min_size=1, max_size=20,
)
_value = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(_key, _value), min_size=1, max_size=8))
def test_encode_then_parse_round_trips(pairs: list[tuple[str, str]]) -> None:
    (msg,) = AmiParser(expect_banner=False).feed(encode(pairs))
    assert isinstance(msg, Message)
    for k, v in pairs:
        assert v in msg.values_of(k)
