"""HTTP/1.1 on the wire, without I/O: httptools (llhttp, in C) parses, a few
functions serialise. The server (``_http_server``) and the client
(``_http_client``) feed received bytes in and send the bytes built here.

httptools parses everything it is given and cannot pause, so a reader turns
its callbacks into a queue of events, h11-style, consumed in order:

- a head (``RequestHead``; a ``(status, raw_headers)`` tuple for a response),
- ``bytes`` for each piece of body,
- an ``End`` (``END``, or one carrying the chunked body's trailer fields),
- a ``WireError`` when the peer broke the protocol (nothing is parsed after).

Pipelined requests simply queue up behind the one being served.

What llhttp does not do the way h11 did, and what is done about it here:

- llhttp knows a fixed list of methods; Swift's backend ones (``REPLICATE``
  and friends) are not on it. A request line that starts a received chunk has
  its method swapped for ``GET`` before llhttp sees it and restored in the
  head (body framing never depends on the method). A pipelined request with
  such a method, one not at the start of a chunk, gets 400.
- llhttp refuses raw non-ASCII bytes in the target; they are percent-encoded
  first, as before (``Request.path`` is percent-decoded either way).
- Header size limits (431), Host (400), a transfer coding other than chunked
  (501) and the wording for a bad Content-Length are checked here.
- llhttp cannot skip the body of a response to HEAD: the client's reader ends
  such a response at its head and the parser is replaced before the next
  exchange. It has no end-of-file call either: the client ends a body that
  runs to EOF itself (``ResponseReader.eof``).

Outgoing heads are built as one ``str``, checked once for CR, LF and NUL
inside names and values (header injection: ``HeaderError``), and encoded once.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

import httptools

from ._http_message import Headers

__all__ = [
    "END", "End", "HeaderError", "decode_headers", "RequestHead", "RequestReader", "ResponseReader", "WireError",
    "frame_chunk", "frame_parts", "request_head", "response_head", "trailer_block",
]


class WireError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what a server answers (400, 431, 501)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HeaderError(ValueError):
    """An outgoing head that would not be one HTTP message: CR, LF or NUL in
    a name or value, a name that is not a token, a target with whitespace."""


class End:
    """The end of a message body; ``trailers``: the chunked trailer section (raw)."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.trailers = trailers


END = End([])


class RequestHead:
    """A parsed request head."""

    __slots__ = ("method", "target", "headers", "http11", "keep_alive", "expect_continue", "content_length", "chunked")

    def __init__(
        self, method: str, target: bytes, headers: Headers, http11: bool, keep_alive: bool,
        expect_continue: bool, content_length: int | None, chunked: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.http11 = http11
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.content_length = content_length
        self.chunked = chunked


RequestEvent = RequestHead | bytes | End | WireError
ResponseEvent = tuple[int, list[tuple[bytes, bytes]]] | bytes | End | WireError

# Methods handed to llhttp as they are; any other token is swapped (see the
# module docstring). All are on llhttp's list.
_PASS_METHODS = frozenset({b"GET", b"HEAD", b"PUT", b"POST", b"DELETE", b"OPTIONS", b"COPY", b"PATCH", b"MERGE"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BTOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_LENGTH = ("Invalid character in Content-Length", "Content-Length overflow")


def decode_headers(raw: list[tuple[bytes, bytes]]) -> Headers:
    """Headers from llhttp's fields (it drops the whitespace before a value
    but keeps the one after it; h11 dropped both)."""
    h = Headers()
    h._items = [(k.decode("latin-1").lower(), v.decode("latin-1").rstrip(" \t")) for k, v in raw]
    return h


def _quote_line(line: bytes) -> bytes:
    """Percent-encode raw non-ASCII bytes (llhttp refuses them in a target;
    Swift's clients may send raw UTF-8 paths)."""
    return b"".join(b"%%%02X" % c if c >= 0x80 else bytes((c,)) for c in line)


class RequestReader:
    """The server's side: bytes in (``feed``), ``events`` out."""

    __slots__ = (
        "events", "closed", "_parser", "_max_total", "_max_line", "_idle", "_line_open", "_hold", "_in_head",
        "_fed", "_total", "_url", "_raw", "_hosts", "_trailers", "_method", "_error", "body_untouched",
    )

    def __init__(self, max_header_bytes: int = 65536, max_header_line: int = 16384) -> None:
        self.events: deque[RequestEvent] = deque()
        self.closed = False  # nothing more is parsed (a protocol error, an upgrade)
        self._parser = httptools.HttpRequestParser(self)
        self._max_total = max_header_bytes
        self._max_line = min(max_header_line, max_header_bytes)
        self._idle = True  # between messages: the next byte starts a request line
        self._line_open = False  # a request line began and its CRLF has not come yet
        self._hold = b""  # the start of a request line too short to see its method
        self._in_head = False
        self._fed = 0  # bytes fed while the head stayed incomplete
        self._total = 0
        self._url = b""
        self._raw: list[tuple[bytes, bytes]] = []
        self._hosts = 0
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._method: str | None = None
        self._error: WireError | None = None
        # The last head parsed was chunked and ended exactly where the bytes
        # fed so far end: none of its body reached llhttp, so the body may be
        # read from the transport without the parser (``bypass_body``).
        self.body_untouched = False

    @property
    def mid_message(self) -> bool:
        """Some of a request arrived but not all of it."""
        return not self._idle or bool(self._hold)

    # -- feeding ---------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        fresh = self._idle and not self._hold
        if self._idle or self._line_open:
            data = self._request_line(data)
            if not data:
                return
        events = self.events
        queued = len(events)
        self.body_untouched = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.closed = True  # the request was served as is; nothing after it is read
            return
        except httptools.HttpParserError as exc:
            self._fail(self._error or _parse_error(exc))
            return
        # Bound memory: bytes that gave no event are a head (or a trailer
        # section) still incomplete, which llhttp and httptools hold on to;
        # a huge line sent in small pieces never reaches on_header.
        if len(events) == queued and not self._idle:
            self._fed += len(data)
            if self._fed > self._max_total:
                self._fail(WireError("Request header too large", 431) if self._in_head
                           else WireError("Trailer section too large"))
        else:
            self._fed = 0
            head = events[-1] if fresh and len(events) == queued + 1 else None
            if type(head) is RequestHead and head.chunked:
                # One whole head and nothing after it? Its end is the first
                # CRLF CRLF when every line ends in CRLF (llhttp also takes
                # bare LFs, which would put the end elsewhere). Only chunked
                # bodies need to know (a length-framed one can be taken over
                # wherever llhttp stopped), so other heads skip the scan.
                self.body_untouched = (data.find(b"\r\n\r\n") == len(data) - 4
                                       and data.count(b"\n") == data.count(b"\r\n"))

    def bypass_body(self, rest: bytes) -> None:
        """The current request's body was read from the transport without
        the parser: after a head with ``body_untouched``, or with a
        Content-Length and only body bytes parsed (llhttp holds no framing
        state then); ``rest``: the bytes read past its end. The parser, still
        waiting for that body, is replaced, and ``rest`` is parsed as the
        start of the next request."""
        assert not self.events
        self.body_untouched = False
        self._parser = httptools.HttpRequestParser(self)
        self._idle = True
        self._line_open = False
        self._in_head = False
        self._fed = 0
        self._trailers = None
        if rest:
            self.feed(rest)

    def _fail(self, error: WireError) -> None:
        self.events.append(error)
        self.closed = True

    def _request_line(self, data: bytes) -> bytes:
        if self._idle:
            if self._hold:
                data = self._hold + data
                self._hold = b""
            if data[:1] in (b"\r", b"\n"):
                data = data.lstrip(b"\r\n")  # blank lines between requests
                if not data:
                    return b""
            space = data.find(b" ", 0, 64)
            if space < 0:
                if len(data) < 64 and b"\n" not in data:
                    self._hold = data  # wait for the method's end
                    return b""
            else:
                method = data[:space]
                if method not in _PASS_METHODS and _BTOKEN.fullmatch(method):
                    self._method = method.decode("ascii")
                    data = b"GET" + data[space:]
            self._line_open = True
        end = data.find(b"\r\n")
        if end < 0:
            if not data.isascii():
                data = _quote_line(data)
            return data
        self._line_open = False
        line = data[:end]
        if not line.isascii():
            data = _quote_line(line) + data[end:]
        return data

    # -- llhttp callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        self._idle = False
        self._in_head = True
        self._total = 0
        self._url = b""
        self._raw = []
        self._hosts = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._total += len(url)
        if self._total > self._max_total:
            raise self._raise(WireError("Request header too large", 431))

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            if self._trailers is None:
                self._trailers = []
                self._total = 0
            self._total += len(name) + len(value) + 4
            if self._total > self._max_total:
                raise self._raise(WireError("Trailer section too large"))
            self._trailers.append((name, value))
            return
        size = len(name) + len(value) + 4
        self._total += size
        if size > self._max_line or self._total > self._max_total:
            raise self._raise(WireError("Request header too large", 431))
        if len(name) == 4 and name.lower() == b"host":
            self._hosts += 1
        self._raw.append((name, value))

    def _raise(self, error: WireError) -> WireError:
        self._error = error  # httptools wraps what a callback raises
        return error

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        http11 = parser.get_http_version() >= "1.1"
        if self._hosts != 1 and (http11 or self._hosts):
            raise self._raise(WireError("Missing mandatory Host: header" if not self._hosts
                                        else "Found multiple Host: headers"))
        headers = decode_headers(self._raw)
        chunked = False
        length: int | None = 0
        te = headers.get("transfer-encoding")
        if te is not None:
            if te.lower() != "chunked":
                raise self._raise(WireError("Only Transfer-Encoding: chunked is supported", 501))
            chunked = True
            length = None
        else:
            cl = headers.get("content-length")
            if cl is not None:
                length = int(cl)  # llhttp checked the digits
        keep_alive = http11 and parser.should_keep_alive()
        if parser.should_upgrade():
            # Connection: upgrade or CONNECT: llhttp stops after the head.
            # Served as a plain request, then the connection closes.
            if chunked or length:
                raise self._raise(WireError("Upgrade with a request body is not supported"))
            keep_alive = False
        expect = headers.get("expect")
        method = self._method
        if method is None:
            method = parser.get_method().decode("ascii")
        else:
            self._method = None
        self.events.append(RequestHead(
            method, self._url, headers, http11, keep_alive,
            http11 and expect is not None and "100-continue" in expect.lower(), length, chunked,
        ))

    def on_body(self, body: bytes) -> None:
        self.events.append(body)

    def on_message_complete(self) -> None:
        self._idle = True
        trailers = self._trailers
        if trailers is None:
            self.events.append(END)
        else:
            self._trailers = None
            self.events.append(End(trailers))


def _content_length(raw: list[tuple[bytes, bytes]]) -> int:
    """A response's Content-Length when that alone frames its body, else -1
    (chunked, delimited by EOF, or unparseable: llhttp rejects those anyway)."""
    length = -1
    for k, v in raw:
        name = k.lower()
        if name == b"transfer-encoding":
            return -1
        if name == b"content-length":
            length = int(v) if v.isdigit() else -1
    return length


def _parse_error(exc: httptools.HttpParserError) -> WireError:
    message = str(exc)
    if message in _BAD_LENGTH:
        return WireError("content-length header must be an integer")  # Placement/webob's words
    return WireError(message or type(exc).__name__)


class ResponseReader:
    """The client's side: bytes of responses in, ``events`` out; ``start``
    before each exchange."""

    __slots__ = ("events", "closed", "keep_alive", "_parser", "_head_only", "_dirty", "_raw", "_final",
                 "_informational", "_done", "_in_head", "_fed", "_max_head", "body_left")

    def __init__(self, max_head: int = 131072) -> None:
        self.events: deque[ResponseEvent] = deque()
        self.closed = False
        self.keep_alive = False
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = False
        self._dirty = False  # the parser waits for body bytes that will never reach it: replace it
        self._raw: list[tuple[bytes, bytes]] = []
        self._final: list[tuple[bytes, bytes]] | None = None  # the final head's headers
        self._informational = False
        self._done = False  # the final response ended
        self._in_head = False
        self._fed = 0
        self._max_head = max_head
        self.body_left = -1  # the final response's body bytes not parsed yet; -1: not length-framed

    def start(self, head_only: bool) -> None:
        """A new exchange; ``head_only``: the request was HEAD (no body follows)."""
        if self._dirty:
            self._parser = httptools.HttpResponseParser(self)
            self._dirty = False
        self.events.clear()
        self._head_only = head_only
        self._final = None
        self._done = False
        self._informational = False
        self._in_head = False
        self._fed = 0
        self.keep_alive = False
        self.body_left = -1

    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        events = self.events
        queued = len(events)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._done:
                events.append(WireError(str(exc) or type(exc).__name__))
            self.closed = True
            return
        if len(events) == queued and not self._done:
            self._fed += len(data)
            if self._fed > self._max_head:
                events.append(WireError("response head too large"))
                self.closed = True
        else:
            self._fed = 0

    def eof(self) -> bool:
        """The peer closed: True when that ends a body delimited by EOF
        (``END`` queued), False when the response is cut short."""
        raw = self._final
        if raw is None or self._done or self.closed:
            return False
        for k, _ in raw:
            if k.lower() in (b"content-length", b"transfer-encoding"):
                return False
        self._done = True
        self.closed = True
        self.keep_alive = False
        self.events.append(END)
        return True

    def bypass_body(self) -> None:
        """The rest of a length-framed body (``body_left`` bytes) was taken
        from the transport without the parser: the response is complete.
        The parser, still waiting for those bytes, is replaced before the
        next exchange."""
        assert self.body_left >= 0 and not self.events
        self.body_left = 0
        self._done = True
        self._dirty = True

    # -- llhttp callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        self._raw = []
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            self._raw.append((name, value))  # a response's trailers are dropped

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        status = parser.get_status_code()
        if self._done:
            return
        self.events.append((status, self._raw))
        if status < 200:
            self._informational = True
            return
        self._final = self._raw
        self.keep_alive = parser.should_keep_alive()
        self.body_left = 0 if self._head_only or status in (204, 304) else _content_length(self._raw)
        if self._head_only:
            self._done = True
            self._dirty = True
            self.events.append(END)

    def on_body(self, body: bytes) -> None:
        if not self._done:
            self.events.append(body)
            if self.body_left > 0:
                self.body_left -= len(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
        elif not self._done:
            self._done = True
            self.events.append(END)


# -- serialising -----------------------------------------------------------------
_TITLE: dict[str, str] = {}  # lower-case name -> title-cased, checked once


def _title(name: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise HeaderError(f"illegal header name {name!r}")
    if len(_TITLE) > 4096:
        _TITLE.clear()
    title = _TITLE[name] = name.title()
    return title


_NAMES: set[str] = set()  # names checked once (the client sends them as given)


def _check_name(name: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise HeaderError(f"illegal header name {name!r}")
    if len(_NAMES) > 4096:
        _NAMES.clear()
    _NAMES.add(name)


def _encode(block: str, lines: int) -> bytes:
    """``block`` must hold exactly ``lines`` CRLFs (a CR, LF or NUL inside a
    name or value would break the message or smuggle another one)."""
    if block.count("\n") != lines or block.count("\r") != lines or "\0" in block:
        raise HeaderError("CR, LF or NUL in a header")
    try:
        return block.encode("latin-1")
    except UnicodeEncodeError:
        return block.encode("latin-1", "replace")  # values only: names are tokens


def response_head(status: int, reason: str, headers: Headers, date: str, server: str | None) -> bytes:
    """The status line and headers, title-cased names, Date and Server added."""
    title = _TITLE
    lines = [f"HTTP/1.1 {status} {reason}"]
    for k, v in headers._items:
        t = title.get(k)
        if t is None:
            t = _title(k)
        lines.append(f"{t}: {v}")
    lines.append(f"Date: {date}")
    if server is not None:
        lines.append(f"Server: {server}")
    lines.append("\r\n")
    return _encode("\r\n".join(lines), len(lines))


def request_head(
    method: str, target: str, items: list[tuple[str, str]], host: str
) -> tuple[bytes, int, bool]:
    """The request line and headers (names as given; ``host`` added first
    when absent). Returns the head, the body's framing (its Content-Length, 0
    without one, -1 for chunked) and whether the request asked to close."""
    if not _TOKEN.fullmatch(method) or not target or " " in target or "\t" in target:
        raise HeaderError(f"illegal request line {method!r} {target!r}")
    if not target.isascii():
        try:
            target.encode("latin-1")  # never "?" for a character: a wrong path
        except UnicodeEncodeError as exc:
            raise HeaderError(f"request target not latin-1: {target!r}") from exc
    lines = [f"{method} {target} HTTP/1.1", ""]
    has_host = False
    declared: int | None = None
    chunked = False
    close = False
    names = _NAMES
    for k, v in items:
        if type(v) is not str:
            v = str(v)
        if k not in names:
            _check_name(k)
        lines.append(f"{k}: {v}")
        n = len(k)
        if n == 4:
            has_host = has_host or k.lower() == "host"
        elif n == 14:
            if k.lower() == "content-length":
                if not v.isdigit() or (declared is not None and int(v) != declared):
                    raise HeaderError(f"bad Content-Length {v!r}")
                declared = int(v)
        elif n == 17:
            if k.lower() == "transfer-encoding":
                if v.lower() != "chunked":
                    raise HeaderError("Only Transfer-Encoding: chunked is supported")
                chunked = True
        elif n == 10 and k.lower() == "connection":
            close = "close" in v.lower()
    if has_host:
        del lines[1]
    else:
        lines[1] = f"host: {host}"
    lines.append("\r\n")
    length = -1 if chunked else declared or 0  # Transfer-Encoding beats Content-Length
    return _encode("\r\n".join(lines), len(lines)), length, close


def trailer_block(trailers: list[tuple[str, str]]) -> bytes:
    """The last chunk of a chunked body with its trailer section."""
    lines = ["0"]
    for k, v in trailers:
        if k not in _NAMES:
            _check_name(k)
        lines.append(f"{k}: {v}")
    lines.append("\r\n")
    return _encode("\r\n".join(lines), len(lines))


def frame_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return frame_parts([data])


def chunk_parts(parts: Sequence[bytes | memoryview]) -> list[bytes | memoryview]:
    """One chunk of a chunked body made of ``parts``, unjoined: its size line,
    the parts, its CRLF (for ``writev`` or separate sends: no copy)."""
    return [b"%x\r\n" % sum(map(len, parts)), *parts, b"\r\n"]


def frame_parts(parts: list[bytes]) -> bytes:
    """One chunk of a chunked body made of ``parts``, in one copy however
    many parts (the proxy frames a PUT's pieces once for all its replicas)."""
    return b"".join(chunk_parts(parts))
