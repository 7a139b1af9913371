"""The request body decoders (common/_chunked.py), pure: any split of the
same bytes gives the same body and trailers, and against llhttp (what the
server's parser makes of the same bytes) the chunked decoder never accepts
what llhttp refuses and never disagrees with it about what it accepts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common._chunked import ChunkedDecoder, LengthDecoder
from common._http_wire import End, RequestReader, WireError

HEAD = b"PUT /o HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-0123456789XY", min_size=1, max_size=12)
VALUE = st.text("abc 123:;=/\t-xyz", max_size=20).map(lambda v: v.strip(" \t"))


def encode(chunks: list[bytes], trailers: list[tuple[str, str]], ext: bool = False, upper: bool = False) -> bytes:
    out = b""
    for c in chunks:
        size = b"%X" % len(c) if upper else b"%x" % len(c)
        out += size + (b";name=value" if ext else b"") + b"\r\n" + c + b"\r\n"
    out += b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in trailers) + b"\r\n"
    return out


def decode(data: bytes, cuts: list[int], decoder: ChunkedDecoder | LengthDecoder | None = None,
           ) -> tuple[bytes, list[tuple[bytes, bytes]], bool, bytes]:
    """Feed ``data`` cut at ``cuts``, as a pump does (each piece in a fresh
    buffer); (body, trailers, done, bytes after the end)."""
    dec = decoder or ChunkedDecoder()
    body = bytearray()
    rest = b""
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in zip(bounds, bounds[1:], strict=False):
        if dec.done:
            rest += data[a:b]
            continue
        buf = bytearray(data[a:b])
        spans: list[tuple[int, int]] = []
        used = dec.feed(buf, 0, len(buf), spans)
        for s, e in spans:
            body += buf[s:e]
        rest += bytes(buf[used:])
    return bytes(body), dec.trailers, dec.done, rest


def norm(trailers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """As ``decode_headers`` makes them (trailing whitespace dropped)."""
    return [(k, v.rstrip(b" \t")) for k, v in trailers]


def llhttp(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]] | None, bool]:
    """(body, trailers or None, error) as the server's llhttp reader sees ``data`` after HEAD."""
    reader = RequestReader()
    reader.feed(HEAD)
    reader.events.popleft()
    reader.feed(data)
    body = b""
    for ev in reader.events:
        if isinstance(ev, WireError):
            return body, None, True
        if isinstance(ev, End):
            return body, [(k, v.rstrip(b" \t")) for k, v in ev.trailers], False
        if isinstance(ev, bytes):
            body += ev
    return body, None, False


chunk_lists = st.lists(st.binary(min_size=1, max_size=300), max_size=8)
trailer_lists = st.lists(st.tuples(TOKEN, VALUE), max_size=3)
cut_lists = st.lists(st.integers(min_value=0, max_value=5000), max_size=12)


@given(chunk_lists, trailer_lists, cut_lists, st.booleans(), st.booleans(), st.binary(max_size=40))
def test_any_split_gives_the_body_the_trailers_and_what_follows(chunks, trailers, cuts, ext, upper, after):
    data = encode(chunks, trailers, ext, upper)
    body, got_trailers, done, rest = decode(data + after, cuts)
    assert done and body == b"".join(chunks) and rest == after
    assert got_trailers == [(k.encode(), v.encode()) for k, v in trailers]
    assert llhttp(data) == (body, got_trailers, False)


@given(chunk_lists, trailer_lists, st.integers(1, 64), st.integers(1, 700))
def test_reading_data_left_straight_through_gives_the_same_body(chunks, trailers, frame_read, lend):
    """As a pump with a lending sink reads: ``data_left`` bytes at most
    ``lend`` at a time reported with ``skip_data``, framing in reads of
    ``frame_read`` bytes through ``feed``; the same body, trailers and end."""
    data = encode(chunks, trailers)
    dec = ChunkedDecoder()
    body = bytearray()
    pos = 0
    while not dec.done:
        if dec.data_left:
            n = min(dec.data_left, lend, len(data) - pos)
            body += data[pos:pos + n]
            dec.skip_data(n)
            pos += n
            continue
        buf = bytearray(data[pos:pos + frame_read])
        spans: list[tuple[int, int]] = []
        used = dec.feed(buf, 0, len(buf), spans)
        for s, e in spans:
            body += buf[s:e]
        pos += used
    assert bytes(body) == b"".join(chunks)
    assert dec.trailers == [(k.encode(), v.encode()) for k, v in trailers]
    assert pos == len(data)


@given(chunk_lists, trailer_lists, st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), min_size=1,
                                            max_size=3), st.integers(0, 2), cut_lists)
@settings(max_examples=400)
def test_never_more_lenient_than_llhttp_and_never_in_disagreement(chunks, trailers, edits, kind, cuts):
    data = bytearray(encode(chunks, trailers))
    for pos, byte in edits:  # damage the framing: replace, insert or delete a byte
        pos %= len(data)
        if kind == 0:
            data[pos] = byte
        elif kind == 1:
            data.insert(pos, byte)
        else:
            del data[pos]
    data = bytes(data)
    try:
        body, got_trailers, done, rest = decode(data, cuts)
    except WireError:
        return  # refused; llhttp may refuse or be lenient, either is safe
    ref_body, ref_trailers, ref_error = llhttp(data)
    if done:
        # what we accept, llhttp accepts, with the same body and trailers
        assert not ref_error and ref_trailers == norm(got_trailers) and ref_body == body
    else:
        assert ref_body.startswith(body) or ref_error


@pytest.mark.parametrize("base", [b"0\r\n\r\n", b"1;a=b\r\nz\r\n0\r\nx-a: b\r\n\r\n"])
def test_every_single_byte_damage_is_judged_as_llhttp_judges_it_or_refused(base):
    """The property above, exhaustively for one damaged byte (replaced or
    inserted anywhere, any value): what random examples found once in many
    runs (``0;``, whitespace after a size) is checked on every run."""
    for pos in range(len(base) + 1):
        for byte in range(256):
            variants = [base[:pos] + bytes([byte]) + base[pos:]]
            if pos < len(base):
                variants.append(base[:pos] + bytes([byte]) + base[pos + 1:])
            for data in variants:
                try:
                    body, got_trailers, done, _ = decode(data, [])
                except WireError:
                    continue
                if done:
                    ref_body, ref_trailers, ref_error = llhttp(data)
                    assert not ref_error and ref_trailers == norm(got_trailers) and ref_body == body, data


@given(st.integers(0, 3000), cut_lists, st.binary(max_size=20))
def test_length_decoder_takes_exactly_n_bytes(n, cuts, after):
    data = bytes(range(256)) * 12
    body, trailers, done, rest = decode(data[:n] + after, cuts, LengthDecoder(n))
    assert done and body == data[:n] and rest == after and trailers == []


@pytest.mark.parametrize("bad", [
    b"zz\r\nabc\r\n",  # not hex
    b"-1\r\n",
    b"11111111111111111\r\n",  # 17 hex digits
    b"3\nabc\r\n",  # bare LF after the size
    b"3\r\nabcd\r\n",  # more data than the size says
    b"3\r\nabc\n",  # bare LF after the data
    b"0;\r\n\r\n",  # an extension with no name (llhttp refuses it; hypothesis found it)
    b"0\t\r\n\r\n",  # whitespace after the size (llhttp refuses it; hypothesis found it)
    b"1 \r\nz\r\n0\r\n\r\n",
    b"1;a=\r\nz\r\n0\r\n\r\n",
    b"1;a b\r\nz\r\n0\r\n\r\n",
    b"0\r\nBad Name: x\r\n\r\n",
    b"0\r\n folded\r\n\r\n",
    b"0\r\nx-a: b\rc\r\n\r\n",
    b"0\r\nno-colon\r\n\r\n",
])
def test_broken_framing_is_refused(bad):
    with pytest.raises(WireError):
        decode(bad, [])


def test_limits_on_a_size_line_and_on_the_trailer_section():
    with pytest.raises(WireError, match="too long"):
        decode(b"1;" + b"e" * 5000 + b"\r\n", [])
    with pytest.raises(WireError, match="too long"):
        decode(b"1;" + b"e" * 5000, [100, 2000, 4000])  # never a line end: bounded all the same
    with pytest.raises(WireError, match="Trailer section too large"):
        decode(b"0\r\n" + b"x-a: 1234567890\r\n" * 10 + b"\r\n", [], ChunkedDecoder(max_trailer=100))
    with pytest.raises(WireError, match="Trailer section too large"):
        decode(b"0\r\nx-a: " + b"1" * 200, [50, 100], ChunkedDecoder(max_trailer=100))
    # just under the limits is fine
    body, trailers, done, _ = decode(b"1;" + b"e" * 4000 + b"\r\nz\r\n0\r\nx-a: 1\r\n\r\n", [7, 3000])
    assert (body, trailers, done) == (b"z", [(b"x-a", b"1")], True)


def test_an_unfinished_body_is_not_done():
    body, _, done, _ = decode(b"5\r\nhel", [])
    assert (body, done) == (b"hel", False)
    body, _, done, _ = decode(b"5\r\nhello\r\n0\r\nx-a: 1\r\n", [])
    assert (body, done) == (b"hello", False)
