"""Request bodies: JSON only, decoded exactly.

Litestar decodes a JSON body to Python values before converting it to the handler's ``data``
type; its decoder turns ``10.50`` into a float. This request class decodes JSON numbers that have
a fraction or exponent as ``Decimal`` from their own text (msgspec's ``float_hook``), so an amount
is never a float, and it refuses bodies that are not ``application/json`` (415) or not JSON (400).
The size limit (413) is Litestar's ``request_max_body_size``.

``Content-Type`` and ``Content-Length`` are read straight from the ASGI scope's header list, and the
body from ``receive`` in one loop: Litestar's own path builds a ``Headers`` multidict and runs an
async generator per request for the same result. The checks are Litestar's: a ``Content-Length``
or a streamed body over the limit is 413, a bad ``Content-Length`` 400, a disconnect 500.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Empty

from api.problems import MalformedBodyError, UnsupportedMediaTypeError

__all__ = ["JsonRequest"]

_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)


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
        try:
            length = self._content_length = int(header) if header is not None else None
        except ValueError:
            raise ClientException(f"Invalid content-length: {header!r}") from None
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
        return body

    async def json(self) -> Any:
        media_type = self.content_type[0]
        if not _is_json(media_type):
            raise UnsupportedMediaTypeError(media_type)
        body = await self.body()
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
