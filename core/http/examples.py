"""Examples in the OpenAPI document, for the routes a slice contributes.

- ``documented_header``: a response header that the handler sets itself. Litestar derives a
  header's schema from the type of its ``value``, and an OpenAPI header without a schema is
  invalid; so the example is the value too, and ``documentation_only`` keeps it out of the
  responses.
- ``example``: one example body, named after its summary.
- ``with_examples``: an ``operation_class`` that gives an operation example bodies, of the
  request and of the responses by status. They go beside the schema, in the media type's
  ``examples`` (where Swagger UI, Scalar and Schemathesis read them), and the schemas stay as
  Litestar derives them: ``Body(examples=...)`` would wrap the body's ``$ref`` in an ``allOf``,
  and a ``ResponseSpec`` for the success status would replace the success response and its
  headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar.datastructures import ResponseHeader
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody

__all__ = ["Examples", "documented_header", "example", "with_examples"]

# Examples by name (the key of the media type's ``examples``).
Examples = Mapping[str, Example]


def documented_header(name: str, description: str, example: str) -> ResponseHeader:
    return ResponseHeader(
        name=name,
        description=description,
        documentation_only=True,
        value=example,
        example=example,
    )


@dataclass
class _Example(Example):
    """An example whose value is JSON as the API sends it: Litestar's document leaves out every
    null member of a spec object, which would take ``"closed_at": null`` out of the example."""

    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        schema["value"] = self.value
        return schema


def example(summary: str, value: Any) -> Examples:
    """``value``: JSON builtins (``msgspec.to_builtins`` of a response Struct, for one)."""
    name = re.sub(r"[^a-z0-9]+", "-", summary.lower()).strip("-")
    return {name: _Example(summary=summary, value=value)}


def _put(content: Mapping[str, OpenAPIMediaType] | None, examples: Examples, where: str) -> None:
    if not content:
        raise ValueError(f"{where} has no body to give examples of")
    for media_type in content.values():
        media_type.examples = dict(examples)


def with_examples(
    request: Examples | None = None, responses: Mapping[int, Examples] | None = None
) -> type[Operation]:
    @dataclass
    class _WithExamples(Operation):
        def __post_init__(self) -> None:
            if request:
                body: Any = self.request_body
                _put(body.content if isinstance(body, RequestBody) else None, request, "request")
            for status, examples in (responses or {}).items():
                response: Any = (self.responses or {}).get(str(status))
                content = response.content if isinstance(response, OpenAPIResponse) else None
                _put(content, examples, f"response {status}")

    return _WithExamples
