"""Validation: raw Kafka bytes → :class:`EnrichedEvent`, or a :class:`DeadLetter` with its reason.

``decode`` never raises for bad input: whatever a producer sends (malformed JSON, wrong types,
unknown type, oversize, non-UTF-8, an empty record) becomes a dead letter naming the
offending field (the contract's ``ContractError.field``) and why, so one bad record can never
stop the worker.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
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


class DecodeCache:
    """Decode each Kafka record once for every agent of the worker that reads it.

    The sink and the plugin agents (alerts, governance) subscribe to the same events topic in
    the same process and each used to decode, validate, enrich and redact every record again.
    This cache keys a result by its coordinates ``(topic, partition, offset)`` and keeps it
    until ``readers`` agents have taken it (the first decodes, the others hit), or until
    ``capacity`` newer records pushed it out (oldest first), so it stays bounded even when a
    reader never asks (a record the sink's replay guard drops, a message faust skips after a
    rebalance). A miss only costs the decode it would have cost anyway.

    Correctness: ``decode`` is deterministic for the same bytes, coordinates, inventory and
    key, so a hit is the result the caller would have computed (the inventory may have
    changed in between: the hit is what the first reader saw a moment earlier). A hit is
    returned only when the cached raw bytes are the very same object or equal bytes, so a
    replay after a rebalance, or a recreated topic with other bytes at the same offset, can
    never get another record's result. Results are shared between agents: every reader must
    treat them as read-only (none mutates them today). Single-threaded use (the faust event
    loop).
    """

    __slots__ = ("_entries", "capacity", "hits", "misses", "readers")

    def __init__(self, capacity: int = 50_000, readers: int = 1) -> None:
        self.capacity = capacity
        self.readers = readers
        self.hits = 0
        self.misses = 0
        # coords → [raw, result, reads still expected]
        self._entries: OrderedDict[tuple[str, int, int], list] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(
        self,
        raw: bytes | None,
        coords: KafkaCoords,
        decode_fn: Callable[[], EnrichedEvent | DeadLetter],
    ) -> EnrichedEvent | DeadLetter:
        """The cached result for this record, else ``decode_fn()`` (remembered if shared)."""
        if self.readers <= 1:
            return decode_fn()
        entries = self._entries
        key = (coords.topic, coords.partition, coords.offset)
        hit = entries.get(key)
        if hit is not None:
            cached_raw = hit[0]
            if cached_raw is raw or cached_raw == raw:
                self.hits += 1
                hit[2] -= 1
                if hit[2] <= 0:
                    del entries[key]
                return hit[1]
            del entries[key]  # same coordinates, other bytes: never reuse
        self.misses += 1
        out = decode_fn()
        entries[key] = [raw, out, self.readers - 1]
        if len(entries) > self.capacity:
            entries.popitem(last=False)
        return out
