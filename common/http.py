"""The shared HTTP layer: a thin HTTP/1.1 server on trio streams and a pooled
client, both parsing with httptools (llhttp, in C; the wire format is
``_http_wire``). DESIGN.md, "HTTP server and internal client": chosen by
measured CPU per request, and llhttp over h11 for the same reason
(docs/DECISIONS.md). Servers accept any stream and clients any transport, so
the simulation can run them in memory.

Server side::

    async def handler(request: Request) -> Response: ...
    port = await nursery.start(partial(serve_http, handler, host="127.0.0.1", port=0))

``Request``: method, target, raw_path, path (percent-decoded, surrogateescape;
check with ``is_valid_utf8``), query_string, query, headers (case-insensitive
``Headers``), client, content_length, chunked, context (per-request scratch
space for middlewares), ``await read(limit)``, ``iter_body()``;
``Request.make(...)`` builds a subrequest. ``Response(status, headers, body)``
with bytes or an async-iterable body; ``Response.text(status, message)`` for
Swift-style plain-text errors. Raise ``HTTPError(message, status)`` from a
handler to answer with that status.

Client side::

    client = HTTPClient()
    resp = await client.request("GET", host, port, "/path", headers={...}, timeout=5)
    async with client.stream("GET", host, port, "/path") as resp:
        async for chunk in resp.iter_body(): ...
    conn = await client.open(host, port)   # low level, for fan-out PUTs
    await conn.send_request("PUT", path, headers)   # with expect: 100-continue
    status, headers = await conn.read_head(allow_informational=True)  # 100 or the answer
    Response(200, headers, RelayBody(conn, first, timeout))  # pass a peer's body on (spliced)
"""

from ._bodypump import SendTimeout, send_all_blocking
from ._bodypump import Stats as PumpStats
from ._http_client import (
    ClientConnection,
    ClientResponse,
    HTTPClient,
    RelayBody,
    StreamResponse,
    UpstreamError,
    tcp_connect,
)
from ._http_message import (
    CHUNK_SIZE,
    REASONS,
    BodyTimeout,
    BodyTooLarge,
    ClientDisconnect,
    Headers,
    HTTPError,
    Request,
    Response,
    decode_path,
    is_valid_utf8,
    parse_query,
    quote_path,
)
from ._http_server import Handler, serve_http, serve_stream
from ._http_wire import chunk_parts, frame_parts

__all__ = [
    "CHUNK_SIZE", "REASONS", "BodyTimeout", "BodyTooLarge", "ClientConnection", "ClientDisconnect",
    "ClientResponse", "HTTPClient", "HTTPError", "Handler", "Headers", "PumpStats", "RelayBody", "Request", "Response",
    "SendTimeout", "StreamResponse", "UpstreamError", "chunk_parts", "decode_path", "frame_parts", "is_valid_utf8", "parse_query",
    "quote_path", "send_all_blocking", "serve_http", "serve_stream", "tcp_connect",
]
