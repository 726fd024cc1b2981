"""The event contract as a JSON Schema (draft 2020-12), for producers in other languages.

Generated from :mod:`auditstream.producers.contract` (never edited by hand)::

    python -m auditstream.producers.schema            # rewrites producers/schema/event-v1.json
    python -m auditstream.producers.schema --check    # exit 1 if the committed file is stale

The envelope's ``data`` is tied to ``type`` with ``if``/``then`` (one branch per event type),
and ``subject`` (the agent id) is required for every type except a customer complaint. Two rules
are beyond JSON Schema and are checked by the SDK and the workers only: the encoded size limit
and ``data."gen_ai.agent.id"`` equal to ``subject`` when both are present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from auditstream.producers.contract import (
    DATA_TYPES,
    MAX_EVENT_BYTES,
    SCHEMA_URI,
    SCHEMA_VERSION,
    TYPE_PREFIX,
    AuditEvent,
)

# A module beside the data folder (not a package) so the wheel needs no extra package entry.
SCHEMA_PATH = Path(__file__).with_name("schema") / f"event-v{SCHEMA_VERSION}.json"
_REF = "#/$defs/{name}"


def build_schema() -> dict[str, Any]:
    """The JSON Schema of one encoded event (pure: derived from the contract's structs)."""
    structs = [AuditEvent, *DATA_TYPES.values()]
    _, defs = msgspec.json.schema_components(structs, ref_template=_REF)
    envelope = defs.pop("AuditEvent")
    defs.pop("EventData", None)  # the base struct; every type has its own branch below

    properties = dict(envelope["properties"])
    properties["data"] = {"type": "object", "description": "Per-type payload; see allOf."}
    properties["specversion"] = {"const": "1.0"}
    required = sorted({*envelope["required"], "specversion"}, key=list(properties).index)

    branches: list[dict[str, Any]] = [
        {
            "if": {"properties": {"type": {"const": TYPE_PREFIX + kind}}, "required": ["type"]},
            "then": {"properties": {"data": {"$ref": _REF.format(name=cls.__name__)}}},
        }
        for kind, cls in DATA_TYPES.items()
    ]
    branches.append(
        {
            "description": "subject (the agent id) may be absent only on a customer complaint",
            "if": {"not": {"properties": {"type": {"const": TYPE_PREFIX + "complaint"}}}},
            "then": {
                "required": ["subject"],
                "properties": {"subject": {"type": "string", "minLength": 1}},
            },
        }
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_URI,
        "title": f"auditstream audit event, version {SCHEMA_VERSION}",
        "description": (
            "A CloudEvents 1.0 envelope (structured mode, JSON) whose data follows the "
            "OpenTelemetry GenAI semantic conventions. Kafka record key = subject (agent id). "
            f"Not expressible here, enforced by the SDK and workers: the encoded event is at most "
            f'{MAX_EVENT_BYTES} bytes; data."gen_ai.agent.id", when present, equals subject.'
        ),
        "type": "object",
        "properties": properties,
        "required": required,
        "allOf": branches,
        "$defs": dict(sorted(defs.items())),
    }


def render_schema() -> str:
    """The file's exact text (stable key order, trailing newline) so a test can compare it."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(render_schema(), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m auditstream.producers.schema")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != render_schema():
            print(f"{args.output} is out of date: run python -m auditstream.producers.schema")
            return 1
        print(f"{args.output} is up to date")
        return 0
    print(f"wrote {write_schema(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
