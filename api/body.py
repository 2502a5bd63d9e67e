"""Request bodies: JSON only, decoded exactly.

Litestar decodes a JSON body to Python values before converting it to the handler's ``data``
type; its decoder turns ``10.50`` into a float. This request class decodes JSON numbers that have
a fraction or exponent as ``Decimal`` from their own text (msgspec's ``float_hook``), so an amount
is never a float, and it refuses bodies that are not ``application/json`` (415) or not JSON (400).
The size limit (413) is Litestar's ``request_max_body_size``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import msgspec
from litestar import Request

from api.problems import MalformedBodyError, UnsupportedMediaTypeError

__all__ = ["JsonRequest"]

_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class JsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        media_type = self.content_type[0]
        if not _is_json(media_type):
            raise UnsupportedMediaTypeError(media_type)
        body = await self.body()
        try:
            return _decoder.decode(body)
        except msgspec.DecodeError as error:
            raise MalformedBodyError(f"the body is not valid JSON: {error}") from None
