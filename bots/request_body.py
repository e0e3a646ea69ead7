"""A request's body, read within a limit and decoded, or refused with a reason.

aiohttp's `request.json()` answered 500 to a caller's mistakes: LookupError for a charset
that is not a text encoding (`nonexistent`, `rot13`, `base64`), RequestPayloadError for a
body that does not match its `Content-Encoding` (gzip or deflate on plain bytes). And it
read a body over the limit into memory before refusing it: the buffer then lived on in
the 413 exception's traceback until a full garbage collection, so bursts of oversized
bodies grew the process for good.

Here a body over the limit is refused by its Content-Length before a byte is read, or as
soon as a streamed (chunked or compressed) body passes the limit. A refusal of a body
that was not read to its end asks for the connection to be closed (`Connection: close`):
aiohttp then drains what the caller is still sending, for a few seconds at most, and
closes. A body that cannot be read at all (its encoding is broken) is marked finished,
so aiohttp neither reads it again nor logs the broken stream as an unhandled exception.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    # the body was not read to its end: the connection cannot carry another request
    close: bool = True


def _charset_problem(charset: str | None) -> str | None:
    if charset is None:
        return None
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        codec = None
    # what bytes.decode() itself checks before refusing "rot13", "base64", "hex"...
    if codec is None or not getattr(codec, "_is_text_encoding", True):
        return f"the charset {charset!r} is not a text encoding: send UTF-8"
    return None


async def read_text(request: web.Request, limit: int) -> str | Refusal:
    """The body as text, at most `limit` bytes once decompressed; or why not."""
    too_large = Refusal(413, f"the body is over the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        return too_large
    problem = _charset_problem(request.charset)
    if problem:
        return Refusal(400, problem)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
    except (RequestPayloadError, HttpProcessingError) as exc:
        # the parser gave up on this body (its Content-Encoding or chunks are broken):
        # nothing more can be read from the connection, and aiohttp must not try
        request.content.feed_eof()
        encoding = request.headers.get("Content-Encoding")
        how = f"its Content-Encoding ({encoding})" if encoding else "its framing"
        return Refusal(400, f"the body could not be read: it does not match {how}"
                       f" ({aiohttp_reason(exc)})")
    except ConnectionError:
        return Refusal(400, "the connection closed before the body was complete")
    try:
        return b"".join(chunks).decode(request.charset or "utf-8")
    except ValueError:  # UnicodeDecodeError, or a plain UnicodeError (idna, punycode)
        return Refusal(400, f"the body is not valid {request.charset or 'UTF-8'}", close=False)


def aiohttp_reason(exc: BaseException) -> str:
    """What aiohttp says is wrong with a request, without its "400, message:" prefix."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1].strip()[:200]
