"""Request body framing without I/O: where a body's bytes are in what was
received (pure; ``_bodypump`` reads the socket, this says what to keep).

Two decoders with one interface, for the two framings HTTP/1.1 has:

- ``LengthDecoder(n)``: the next ``n`` bytes are the body.
- ``ChunkedDecoder``: the chunked transfer coding (RFC 9112, section 7.1):
  ``size-in-hex [;ext] CRLF data CRLF`` ... ``0 CRLF`` trailer fields,
  ``CRLF``. Lines must end in CRLF (llhttp's strict default, which the
  server's parser applies to the same bytes); a size is at most 16 hex
  digits; extensions (``;name`` or ``;name=value``, tokens only) are checked
  and skipped; a size line over ``max_line`` bytes or a
  trailer section over ``max_trailer`` bytes is refused, as are obsolete
  line folding and a field name that is not a token.

``feed(buf, pos, end, spans)`` reads ``buf[pos:end]``, appends the body's
``(start, stop)`` ranges in it to ``spans`` (framing left out, nothing
copied) and returns how far it read: ``end``, or just past the body's last
byte once ``done`` (what follows belongs to the next request). A protocol
error raises ``WireError`` and leaves the decoder unusable. ``want`` is the
most the decoder can use: a reader never reads past a length-framed body.
``due`` is the least a peer that keeps to its framing still has to send (a
reader may wait for that much at once: ``SO_RCVLOWAT``). ``data_left`` is
how many of the next bytes are body, with no framing among them (the rest
of the current chunk; 0 between chunks): a reader may read those straight
into their destination and report them with ``skip_data(n)`` instead of
``feed``.
Feeding the same bytes split in any way gives the same spans' bytes and the
same trailers (tests/unit/test_chunked.py, against llhttp as well).
"""

from __future__ import annotations

import mmap
import re

from ._http_wire import WireError

__all__ = ["ChunkedDecoder", "LengthDecoder"]

_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")  # no control characters
# chunk extensions: ``;name`` or ``;name=value``, tokens only, no whitespace
# (stricter than RFC 9112, never more lenient than llhttp: ``0;`` is refused)
_EXTENSIONS = re.compile(rb"(?:;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:=[!#$%&'*+\-.^_`|~0-9A-Za-z]+)?)*")
_UNBOUNDED = 1 << 62

# ChunkedDecoder states (between lines; data is counted by ``_left``).
_SIZE, _DATA_END, _TRAILER, _DONE = range(4)


class _Decoder:
    """What both framings share: ``_left`` body bytes with no framing among
    them come next (``data_left``), and the trailers once ``done``."""

    __slots__ = ("_left", "trailers")

    def __init__(self, left: int) -> None:
        self._left = left
        self.trailers: list[tuple[bytes, bytes]] = []

    @property
    def data_left(self) -> int:
        return self._left

    def skip_data(self, n: int) -> None:
        self._left -= n


class LengthDecoder(_Decoder):
    """A body of exactly ``n`` bytes."""

    __slots__ = ()

    @property
    def done(self) -> bool:
        return not self._left

    @property
    def want(self) -> int:
        return self._left

    @property
    def due(self) -> int:
        return self._left

    def feed(self, buf: bytearray | mmap.mmap, pos: int, end: int, spans: list[tuple[int, int]]) -> int:
        take = min(self._left, end - pos)
        if take:
            spans.append((pos, pos + take))
            self._left -= take
        return pos + take


class ChunkedDecoder(_Decoder):
    """The chunked transfer coding; ``trailers``: the trailer fields (raw),
    complete once ``done``; ``_left``: data bytes of the current chunk not
    seen yet."""

    __slots__ = ("_state", "_line", "_trailer_bytes", "_max_line", "_max_trailer")

    def __init__(self, max_line: int = 4096, max_trailer: int = 65536) -> None:
        super().__init__(0)
        self._state = _SIZE
        self._line = b""  # the start of a framing line cut by the end of a read
        self._trailer_bytes = 0
        self._max_line = max_line
        self._max_trailer = max_trailer

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def want(self) -> int:
        return 0 if self._state == _DONE else _UNBOUNDED

    @property
    def due(self) -> int:
        if self._state == _DONE:
            return 0
        return self._left + 2 + 3 if self._left else 1  # the data, its CRLF, at least "0\r\n"

    def feed(self, buf: bytearray | mmap.mmap, pos: int, end: int, spans: list[tuple[int, int]]) -> int:
        while pos < end:
            left = self._left
            if left:
                take = min(left, end - pos)
                spans.append((pos, pos + take))
                pos += take
                self._left = left - take
                continue
            if self._state == _DONE:
                return pos
            nl = buf.find(b"\n", pos, end)
            if nl < 0:
                self._line += buf[pos:end]
                self._check_partial()
                return end
            if self._line:
                line = self._line + buf[pos:nl + 1]
                self._line = b""
            else:
                line = bytes(buf[pos:nl + 1])
            pos = nl + 1
            self._on_line(line)
        return pos

    def _check_partial(self) -> None:
        if self._state == _TRAILER:
            over = self._trailer_bytes + len(self._line) > self._max_trailer
        else:
            over = len(self._line) > self._max_line
        if over:
            raise WireError("Trailer section too large" if self._state == _TRAILER else "Chunk size line too long")

    def _on_line(self, line: bytes) -> None:
        if line[-2:-1] != b"\r":
            raise WireError("Expected CRLF in the chunked framing")
        state = self._state
        if state == _SIZE:
            if len(line) > self._max_line:
                raise WireError("Chunk size line too long")
            size, semi, extensions = line[:-2].partition(b";")
            if not _HEX.fullmatch(size):  # no whitespace after it either (llhttp refuses it)
                raise WireError("Invalid character in chunk size")
            if semi and not _EXTENSIONS.fullmatch(semi + extensions):
                raise WireError("Invalid chunk extension")
            n = int(size, 16)
            if n:
                self._left = n
                self._state = _DATA_END
            else:
                self._state = _TRAILER
        elif state == _DATA_END:
            if len(line) != 2:
                raise WireError("Expected CRLF after chunk data")
            self._state = _SIZE
        else:  # _TRAILER
            if len(line) == 2:
                self._state = _DONE
                return
            self._trailer_bytes += len(line)
            if self._trailer_bytes > self._max_trailer:
                raise WireError("Trailer section too large")
            name, colon, value = line[:-2].partition(b":")
            if not colon or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
                raise WireError("Invalid trailer field")
            self.trailers.append((name, value.lstrip(b" \t")))
