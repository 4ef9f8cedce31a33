"""The EventBridge schema registry: what a bus subscriber receives, as ``OpenApi3``.

Subscribers see EventBridge's ``AWSEvent`` wrapper (``source``, ``detail-type``, ...) with our
envelope as ``detail``, so each event type is registered as the document EventBridge itself
generates for discovered schemas: ``components.schemas.AWSEvent`` (with the
``x-amazon-events-source`` / ``x-amazon-events-detail-type`` extensions) whose ``detail``
refers to the type's schema. That schema is ``schemas/envelope.json`` narrowed by
``schemas/<Type>.json``, rendered from JSON Schema 2020-12 into the OpenAPI 3.0 dialect
(a draft-04 subset plus ``nullable``). The 2020-12 files stay the store's schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gip.adapters import aws
from gip.adapters.aws import error_code
from gip.cli import stacks
from gip.errors import GipError

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
OPENAPI_TYPE = "OpenApi3"
# Keywords OpenAPI 3.0 cannot express: refuse rather than register a looser schema.
UNSUPPORTED = {"prefixItems", "if", "then", "else", "dependentRequired", "dependentSchemas",
               "unevaluatedProperties", "unevaluatedItems", "contains", "propertyNames",
               "patternProperties", "$dynamicRef", "$anchor"}
DROPPED = {"$schema", "$id", "$comment", "examples"}
# The AWSEvent wrapper, as EventBridge generates it for discovered schemas.
WRAPPER_FIELDS: dict[str, dict[str, Any]] = {
    "account": {"type": "string"},
    "detail-type": {"type": "string"},
    "id": {"type": "string"},
    "region": {"type": "string"},
    "resources": {"type": "array", "items": {"type": "string"}},
    "source": {"type": "string"},
    "time": {"type": "string", "format": "date-time"},
    "version": {"type": "string"},
}


class SchemaRenderError(GipError):
    """A 2020-12 schema uses something OpenAPI 3.0 cannot express."""


def render(schema: Any, *, refs: dict[str, str] | None = None) -> Any:
    """Pure: a 2020-12 (sub)schema in the OpenAPI 3.0 dialect. ``refs`` maps a local
    ``#/$defs/X`` to its new ``#/components/schemas/...`` target."""
    if isinstance(schema, list):
        return [render(item, refs=refs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bad = UNSUPPORTED.intersection(schema)
    if bad:
        raise SchemaRenderError(f"schema keyword {sorted(bad)[0]!r} has no OpenAPI 3.0 form")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED or key == "$defs":
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if len(kinds) != 1:
                raise SchemaRenderError(f"type {value} has no OpenAPI 3.0 form (one type, maybe null)")
            out["type"] = kinds[0]
            if "null" in value:
                out["nullable"] = True
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")] = value  # draft-04: a bound plus a boolean
            out[key] = True
        elif key == "$ref":
            if not (refs and value in refs):
                raise SchemaRenderError(f"$ref {value!r} is not a local #/$defs reference")
            out["$ref"] = refs[value]
        elif key in ("properties",):
            out[key] = {name: render(sub, refs=refs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") or key in ("allOf", "anyOf", "oneOf"):
            out[key] = render(value, refs=refs)
        else:
            out[key] = value
    if out.get("enum") == [None]:
        raise SchemaRenderError("const null has no OpenAPI 3.0 form")
    return out


def narrow(envelope: dict[str, Any], specific: dict[str, Any]) -> dict[str, Any]:
    """Pure: one schema for "valid envelope and valid type": the envelope's properties, each
    merged with the type's (``allOf`` where both set the same keyword differently)."""
    out = {k: v for k, v in envelope.items() if k not in ("title", "description", "properties", "required")}
    props = dict(envelope.get("properties", {}))
    for name, sub in specific.get("properties", {}).items():
        base = props.get(name)
        if base is None:
            props[name] = sub
        elif any(k in base and base[k] != v for k, v in sub.items()):
            props[name] = {"allOf": [base, sub]}
        else:
            props[name] = {**base, **sub}
    out["properties"] = props
    out["required"] = sorted(set(envelope.get("required", [])) | set(specific.get("required", [])))
    for key in ("title", "description", "x-current-version"):
        if key in specific:
            out[key] = specific[key]
    return out


def event_document(type_: str, *, source: str, envelope: dict[str, Any], specific: dict[str, Any]) -> dict[str, Any]:
    """Pure: the OpenApi3 document for bus events of ``type_`` from ``source``."""
    merged = narrow(envelope, specific)
    defs = {**envelope.get("$defs", {}), **specific.get("$defs", {})}
    refs = {f"#/$defs/{name}": f"#/components/schemas/{type_}_{name}" for name in defs}
    components = {f"{type_}_{name}": render(sub, refs=refs) for name, sub in defs.items()}
    components[type_] = render(merged, refs=refs)
    components["AWSEvent"] = {
        "type": "object",
        "required": ["detail-type", "resources", "detail", "id", "source", "time", "region", "version", "account"],
        "x-amazon-events-detail-type": type_,
        "x-amazon-events-source": source,
        "properties": {"detail": {"$ref": f"#/components/schemas/{type_}"}, **WRAPPER_FIELDS},
    }
    version = str(specific.get("x-current-version", 1))
    return {"openapi": "3.0.0", "info": {"version": version, "title": type_}, "paths": {},
            "components": {"schemas": dict(sorted(components.items()))}}


def documents(source: str, directory: Path = SCHEMAS) -> dict[str, str]:
    """Schema name (the event type) -> registry content, for every ``<Type>.json``."""
    envelope = json.loads((directory / "envelope.json").read_text())
    out = {}
    for path in sorted(directory.glob("*.json")):
        if path.stem == "envelope":
            continue
        doc = event_document(path.stem, source=source, envelope=envelope, specific=json.loads(path.read_text()))
        out[path.stem] = json.dumps(doc, indent=2, sort_keys=True)
    return out


def register(schemas_client: Any, *, registry: str, source: str, reporter: stacks.Reporter,
             directory: Path = SCHEMAS) -> int:
    """Create or update each event type's schema in the registry; returns how many changed.
    The registry is documentation: a failure is a notice, never a failed deploy."""
    try:
        docs = documents(source, directory)
    except (GipError, ValueError, OSError) as exc:
        reporter.notice(f"schemas not registered: {exc}")
        return 0
    changed = 0
    for name, content in docs.items():
        try:
            changed += _put(schemas_client, registry, name, content)
        except Exception as exc:
            reporter.notice(f"schema {name} not registered: {aws.describe(exc)}")
    if changed:
        reporter.info(f"schema registry {registry}: {changed} schema(s) registered")
    return changed


def _put(schemas_client: Any, registry: str, name: str, content: str) -> int:
    try:
        live = schemas_client.describe_schema(RegistryName=registry, SchemaName=name)
    except Exception as exc:
        if error_code(exc) != "NotFoundException":
            raise
        schemas_client.create_schema(RegistryName=registry, SchemaName=name, Type=OPENAPI_TYPE, Content=content)
        return 1
    if live.get("Type") == OPENAPI_TYPE and live["Content"].strip() == content.strip():
        return 0
    schemas_client.update_schema(RegistryName=registry, SchemaName=name, Type=OPENAPI_TYPE, Content=content)
    return 1
