"""Validation: raw Kafka bytes → :class:`EnrichedEvent`, or a :class:`DeadLetter` with its reason.

``decode`` never raises for bad input: whatever a producer sends (malformed JSON, wrong types,
unknown type, oversize, non-UTF-8, an empty record) becomes a dead letter naming the
offending field (the contract's ``ContractError.field``) and why, so one bad record can never
stop the worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from auditstream.producers.contract import MAX_EVENT_BYTES, ContractError, decode_event
from auditstream.stream.enrich import (
    DEFAULT_HASH_KEY,
    EnrichedEvent,
    Inventory,
    KafkaCoords,
    enrich,
)

# Reason classes (the `error_class` column): cheap to group by in dashboards.
CONTRACT = "contract"  # the contract's validator rejected a field
OVERSIZE = "oversize"
ENCODING = "encoding"  # not UTF-8
EMPTY = "empty"  # null / empty record value (e.g. a tombstone on the events topic)
INTERNAL = "internal"  # a bug in our own enrichment: still dead-lettered, never a crash


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the pipeline refused, with where it came from and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    field: str  # JSON path of the offending field, "$" for the whole record
    reason: str
    error_class: str
    received_ms: int

    @property
    def coords(self) -> KafkaCoords:
        return KafkaCoords(self.topic, self.partition, self.offset, self.key)


def _dead(raw: bytes, coords: KafkaCoords, field: str, reason: str, cls: str) -> DeadLetter:
    return DeadLetter(
        topic=coords.topic,
        partition=coords.partition,
        offset=coords.offset,
        key=coords.key,
        raw=raw,
        field=field,
        reason=reason,
        error_class=cls,
        received_ms=int(time.time() * 1000),
    )


def decode(
    raw: bytes | None,
    coords: KafkaCoords,
    inventory: Inventory,
    *,
    max_bytes: int = MAX_EVENT_BYTES,
    hash_key: bytes = DEFAULT_HASH_KEY,
) -> EnrichedEvent | DeadLetter:
    """Decode, validate and enrich one record; bad input yields a :class:`DeadLetter`."""
    if not raw:
        return _dead(b"", coords, "$", "empty record value", EMPTY)
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    size = len(raw)
    if size > max_bytes:
        return _dead(
            raw, coords, "$", f"event is {size} bytes, over the {max_bytes}-byte limit", OVERSIZE
        )
    try:
        event = decode_event(raw, max_bytes=max_bytes)
    except ContractError as exc:
        cls = ENCODING if "utf-8" in exc.reason.lower() else CONTRACT
        return _dead(raw, coords, exc.field, exc.reason, cls)
    except UnicodeDecodeError as exc:
        # msgspec raises this (not DecodeError) for invalid UTF-8 inside a nested raw value.
        reason = f"not valid UTF-8: {exc.reason} at byte {exc.start}"
        return _dead(raw, coords, "$", reason, ENCODING)
    except Exception as exc:  # any decoder surprise is a dead letter, not a crash
        return _dead(raw, coords, "$", f"undecodable: {type(exc).__name__}: {exc}", CONTRACT)
    try:
        return enrich(event, size, inventory, coords, hash_key=hash_key)
    except Exception as exc:
        return _dead(raw, coords, "$", f"enrichment failed: {type(exc).__name__}: {exc}", INTERNAL)
