"""The replay guard: never insert a record that is already stored.

Kafka redelivers everything after the last committed offset when a worker restarts or a
partition moves (at-least-once). The sink commits offsets only after ClickHouse acknowledged a
batch, so a redelivered range can overlap rows that were inserted but whose offsets were not
yet committed (e.g. kill -9 between insert and commit).

Rule: for each partition the guard remembers the next offset it expects. When a batch starts
anywhere else (first batch after start or rebalance, or a gap), it asks ClickHouse once for
the offsets already stored for that partition at or after the batch's first offset (events and
dead letters) and drops those records, and keeps the set so later contiguous batches of the
same replay are filtered too. Once the partition has moved past the largest stored offset the
set is empty and the guard costs one dict lookup per batch.

Pure logic: the loader is injected, so this is unit-tested without a server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

# (topic, partition, from_offset) -> offsets already stored at or after from_offset.
StoredOffsetsLoader = Callable[[str, int, int], Iterable[int]]

T = TypeVar("T")


class ReplayGuard:
    def __init__(self, loader: StoredOffsetsLoader) -> None:
        self._loader = loader
        # filter() runs in an executor thread, reset() on the event loop (rebalance signal).
        self._lock = threading.Lock()
        self._expected: dict[tuple[str, int], int] = {}
        self._stored: dict[tuple[str, int], tuple[set[int], int]] = {}
        self.loads = 0  # how many times ClickHouse was asked (observability and tests)
        self.skipped = 0  # records dropped as already stored

    def reset(self) -> None:
        """Forget all positions (call on partition assignment: another worker may have written)."""
        with self._lock:
            self._expected.clear()
            self._stored.clear()

    def filter(self, records: Sequence[T], coords: Callable[[T], tuple[str, int, int]]) -> list[T]:
        """Return the records not yet stored, in order; updates the expected positions."""
        with self._lock:
            return self._filter(records, coords)

    def _filter(self, records: Sequence[T], coords: Callable[[T], tuple[str, int, int]]) -> list[T]:
        out: list[T] = []
        for rec in records:
            topic, partition, offset = coords(rec)
            tp = (topic, partition)
            expected = self._expected.get(tp)
            if expected is None or offset != expected:
                # Start, rebalance or gap: (re)load what ClickHouse already has from here on.
                self.loads += 1
                stored = {o for o in self._loader(topic, partition, offset) if o >= offset}
                if stored:
                    self._stored[tp] = (stored, max(stored))
                else:
                    self._stored.pop(tp, None)
            self._expected[tp] = offset + 1
            entry = self._stored.get(tp)
            if entry is not None:
                stored, highest = entry
                if offset >= highest:
                    # Past everything that was stored: the replay is over for this partition.
                    del self._stored[tp]
                if offset in stored:
                    stored.discard(offset)
                    self.skipped += 1
                    continue
            out.append(rec)
        return out
