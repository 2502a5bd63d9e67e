"""Integer query parameters, read strictly.

Litestar converts query values with msgspec in lax mode, which reads ``1e3`` as 1000 and ``5.0``
as 5, and lets an integer of any size through. A parameter typed as a ``QueryInt`` subclass
takes plain ASCII digits only, at most 18 of them (so it fits a 64-bit integer anywhere
downstream), within the class's bounds; anything else is a validation error naming the
parameter. Routes subclass it for their own bounds. msgspec cannot put ``ge``/``le`` constraints
on a custom type, and Litestar leaves a type with a decoder out of the OpenAPI document, so the
class states its schema itself (``QueryInt.schema``, for ``QueryParameter(schema_extra=...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

from litestar.openapi.spec import OpenAPIType

__all__ = ["QUERY_TYPE_DECODERS", "QueryInt", "decode_query_int"]

_DIGITS: Final = re.compile(r"[0-9]{1,18}")


class QueryInt(int):
    minimum: ClassVar[int] = 0
    maximum: ClassVar[int] = 10**18 - 1

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The OpenAPI schema: an integer within the bounds."""
        return {"type": OpenAPIType.INTEGER, "minimum": cls.minimum, "maximum": cls.maximum}


def decode_query_int(kind: type[QueryInt], value: object) -> QueryInt:
    """``value`` as ``kind``: an ``int`` (a default) or a string of ASCII digits, in bounds."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise ValueError("Expected an integer written as plain digits, such as 3")
    if not kind.minimum <= number <= kind.maximum:
        raise ValueError(f"Expected an integer from {kind.minimum} to {kind.maximum}")
    return kind(number)


def _is_query_int(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, QueryInt)


# For Litestar's ``type_decoders``.
QUERY_TYPE_DECODERS: Final[Sequence[tuple[Callable[[Any], bool], Callable[[Any, Any], Any]]]] = [
    (_is_query_int, decode_query_int)
]
