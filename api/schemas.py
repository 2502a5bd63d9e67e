"""The shell's own JSON bodies (health), and what the OpenAPI document says of every plugin's
bodies beyond Litestar's own schemas (``OPENAPI_PLUGINS``)."""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from litestar.openapi.spec import Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

__all__ = ["OPENAPI_PLUGINS", "LiveOut", "PartitionOut", "ReadyOut"]


class LiveOut(msgspec.Struct, frozen=True):
    status: Literal["ok"] = "ok"


class PartitionOut(msgspec.Struct, frozen=True):
    caught_up: bool  # taken over and written here; false while being taken over


class ReadyOut(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Literal["ready", "unavailable"]
    checks: dict[str, bool]
    # A partitioned event store: the partitions this instance writes; absent otherwise.
    partitions: dict[str, PartitionOut] = msgspec.field(default_factory=dict)
    # What backends tell about themselves (``core.diagnostics``), by port; absent when none does.
    details: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


class _ClosedStructSchema(OpenAPISchemaPlugin):
    """Litestar's schema of a Struct, with ``additionalProperties: false`` when the Struct
    forbids unknown fields: Litestar 2 leaves that out, so the document allowed fields that the
    API refuses."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        if field_definition.is_union or not field_definition.is_subclass_of(msgspec.Struct):
            return False
        info = msgspec.inspect.type_info(field_definition.annotation)
        return isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        litestars = next(
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
        )
        schema: Schema = litestars.to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


# For ``Litestar(plugins=...)``: after the plugins' own, ahead of Litestar's schema plugins.
OPENAPI_PLUGINS: Final = (_ClosedStructSchema(),)
