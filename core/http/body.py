"""Request bodies: JSON only, decoded exactly.

Litestar decodes a JSON body to Python values before converting it to the handler's ``data``
type; its decoder turns ``10.50`` into a float. This request class decodes JSON numbers that have
a fraction or exponent as ``Decimal`` from their own text (msgspec's ``float_hook``), so no body
value is ever a float, and it refuses bodies that are not ``application/json`` (415), not JSON,
empty where the route takes a body, or nested deeper than ``MAX_DEPTH`` (400). The size limit
(413) is Litestar's ``request_max_body_size``.

``Content-Type`` and ``Content-Length`` are read straight from the ASGI scope's header list, and the
body from ``receive`` in one loop: Litestar's own path builds a ``Headers`` multidict and runs an
async generator per request for the same result. The checks are Litestar's: a ``Content-Length``
or a streamed body over the limit is 413, a disconnect 500; a ``Content-Length`` that is not
plain digits is 400 ``invalid-header``.

The nesting limit: msgspec decodes arrays and objects by recursion, so a body such as 1,000
``[`` raises ``RecursionError`` (a 500) inside the decoder. ``too_deep`` refuses those first,
exactly and in linear time: a body with at most ``MAX_DEPTH`` opening brackets cannot nest
deeper (two ``bytes.count``, the only cost for the usual body); otherwise it drops the strings
(whose brackets do not nest) and matches what is left against a pattern of at most
``MAX_DEPTH`` nested pairs: a few passes over the bytes, each in C. A fixed, documented limit
answers the same on every host, where ``RecursionError`` depends on how deep the stack already
is.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any, Final

import msgspec
from litestar import Request
from litestar.exceptions import InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Empty

from core.http.problems import InvalidHeaderError, MalformedBodyError, UnsupportedMediaTypeError

__all__ = ["MAX_DEPTH", "JsonRequest", "too_deep"]

_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)

_LENGTH: Final = re.compile(r"[0-9]{1,18}")

# The request bodies of this API are flat objects; plugins get room to spare.
MAX_DEPTH: Final = 32


def _nested_pairs(depth: int) -> bytes:
    """A pattern for one ``(...)`` group nested at most ``depth`` deep. The quantifiers are
    possessive: the grammar is unambiguous, so there is never anything to backtrack into."""
    pattern = rb"\(\)"
    for _ in range(depth - 1):
        pattern = rb"\((?:" + pattern + rb")*+\)"
    return pattern


_WITHIN_DEPTH: Final = re.compile(rb"(?:" + _nested_pairs(MAX_DEPTH) + rb")*+")
# Arrays and objects alike become "(" and ")"; every other byte is dropped.
_BRACKETS: Final = bytes.maketrans(b"[]{}", b"()()")
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"[]{}")))


def too_deep(body: bytes) -> bool:
    """Whether ``body`` nests arrays and objects deeper than ``MAX_DEPTH`` (brackets inside
    strings aside), or has so many brackets out of balance that it might. For well-formed JSON
    this is exact; a malformed body it flags is malformed JSON either way."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    if b"\\" in body:
        # Escapes occur only inside strings: drop escaped backslashes first, so that what is
        # left before a quote is a single backslash exactly when the quote is escaped. (Outside
        # a string a backslash is an error where the decoder stops, before anything after it.)
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(body.split(b'"')[::2])
    brackets = outside_strings.translate(_BRACKETS, _NOT_BRACKETS)
    return _WITHIN_DEPTH.fullmatch(brackets) is None


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class JsonRequest(Request[Any, Any, Any]):
    def _raw_header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    @property
    def content_type(self) -> tuple[str, dict[str, str]]:
        if self._content_type is Empty:
            if (cached := self._connection_state.content_type) is not Empty:
                self._content_type = cached
            else:
                parsed = _parse_content_type(self._raw_header(b"content-type") or "")
                self._content_type = self._connection_state.content_type = parsed
        return self._content_type

    @property
    def content_length(self) -> int | None:
        if self._content_length is not Empty:
            return self._content_length
        header = self._raw_header(b"content-length")
        if header is None:
            length = None
        elif _LENGTH.fullmatch(header):
            length = int(header)
        else:
            # int() would also take "1_7", " 17" or "+17" (servers usually refuse them first).
            raise InvalidHeaderError("Content-Length", "must be the body's size in digits")
        self._content_length = length
        return length

    async def body(self) -> bytes:
        if self._body is not Empty:
            return self._body
        if (cached := self._connection_state.body) is not Empty:
            self._body = cached
            return cached
        if not self.is_connected:
            raise InternalServerException("stream consumed")
        announced = self.content_length
        limit = self.route_handler.resolve_request_max_body_size() or math.inf
        if announced is not None and announced > limit:
            raise RequestEntityTooLarge
        chunks: list[bytes] = []
        total = 0
        while True:
            event = await self.receive()
            if event["type"] == "http.request":
                chunk = event["body"]
                if chunk:
                    total += len(chunk)
                    if total > limit:
                        raise RequestEntityTooLarge
                    chunks.append(chunk)
                if not event.get("more_body", False):
                    break
            if event["type"] == "http.disconnect":
                raise InternalServerException("client disconnected prematurely")
        self.is_connected = False
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._body = self._connection_state.body = body
        if not body:
            self._refuse_if_body_required()
        return body

    def _refuse_if_body_required(self) -> None:
        """Litestar hands a route no ``data`` for an empty body and then reports the missing
        value as a validation error naming ``data``; a route that needs a JSON body answers as
        for any other body that is not JSON (415 or 400) instead."""
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        if data is None or data.is_optional:
            return
        media_type = self.content_type[0]
        if not _is_json(media_type):
            raise UnsupportedMediaTypeError(media_type)
        raise MalformedBodyError("the body is empty; send a JSON document")

    async def json(self) -> Any:
        media_type = self.content_type[0]
        if not _is_json(media_type):
            raise UnsupportedMediaTypeError(media_type)
        body = await self.body()
        if too_deep(body):
            raise MalformedBodyError(f"the body is not JSON nested at most {MAX_DEPTH} levels deep")
        try:
            return _decoder.decode(body)
        except msgspec.DecodeError as error:
            raise MalformedBodyError(f"the body is not valid JSON: {error}") from None


def _parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``"application/json; charset=utf-8"`` -> ``("application/json", {"charset": "utf-8"})``."""
    media_type, _, rest = value.partition(";")
    options: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, option = part.partition("=")
        if sep:
            options[key.strip().lower()] = option.strip().strip('"')
    return media_type.strip().lower(), options
