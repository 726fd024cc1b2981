"""The ClickHouse sink: one columnar insert per table per micro-batch, idempotent on retry.

Delivery (see stream/README.md): the faust agent acks a batch's records only after
:meth:`ClickHouseSink.write` returned, i.e. after ClickHouse acknowledged the inserts, so Kafka
offsets never advance past unstored data. Duplicates are prevented twice:

- a *retried* insert (timeout, connection reset after the server applied it) carries the same
  ``insert_deduplication_token`` (derived from the batch's Kafka coordinates) and is dropped
  by the server, together with its materialized-view rows;
- a *replayed* record (redelivered by Kafka after a crash or rebalance) is dropped before the
  insert by the :class:`~auditstream.stream.guard.ReplayGuard`, which reads the offsets already
  stored from these two tables.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from auditstream.stream.enrich import EnrichedEvent
from auditstream.stream.rows import dead_letters_table, events_table
from auditstream.stream.validate import DeadLetter

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

EVENTS_TABLE = "events"
DEAD_LETTERS_TABLE = "dead_letters"

_STORED_OFFSETS_SQL = """
SELECT kafka_offset FROM {table}
WHERE kafka_topic = {{topic:String}} AND kafka_partition = {{partition:UInt16}}
  AND kafka_offset >= {{offset:UInt64}}
"""


def dedup_token(table: str, coords: Sequence[tuple[str, int, int]]) -> str:
    """A stable token for one batch: the same records in the same order → the same token."""
    h = hashlib.blake2b(digest_size=16)
    h.update(table.encode())
    for topic, partition, offset in coords:
        h.update(f"|{topic}:{partition}:{offset}".encode())
    return h.hexdigest()


class ClickHouseSink:
    """Writes batches; ``client_factory`` is called again after a connection failure."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        *,
        max_backoff_s: float = 30.0,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._factory = client_factory
        self._client: Client | None = None
        self._max_backoff = max_backoff_s
        self._should_stop = should_stop
        self.rows_written = 0
        self.dead_letters_written = 0
        self.retries = 0

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def stored_offsets(self, topic: str, partition: int, from_offset: int) -> list[int]:
        """Offsets of ``topic``/``partition`` at or after ``from_offset`` already stored."""
        params = {"topic": topic, "partition": partition, "offset": from_offset}
        out: list[int] = []
        for table in (EVENTS_TABLE, DEAD_LETTERS_TABLE):
            sql = _STORED_OFFSETS_SQL.format(table=table)
            result = self._retrying(lambda s=sql: self.client.query(s, parameters=params))
            out.extend(row[0] for row in result.result_rows)
        return out

    def write(self, events: Sequence[EnrichedEvent], dead: Sequence[DeadLetter]) -> None:
        """Insert both parts of a batch; returns only when ClickHouse acknowledged them."""
        if events:
            table = events_table(events)
            token = dedup_token(EVENTS_TABLE, [(e.topic, e.partition, e.offset) for e in events])
            self._insert(EVENTS_TABLE, table, token)
            self.rows_written += len(events)
        if dead:
            table = dead_letters_table(dead)
            coords = [(d.topic, d.partition, d.offset) for d in dead]
            token = dedup_token(DEAD_LETTERS_TABLE, coords)
            self._insert(DEAD_LETTERS_TABLE, table, token)
            self.dead_letters_written += len(dead)

    def _insert(self, name: str, table: Any, token: str) -> None:
        settings = {
            "insert_deduplicate": 1,
            "insert_deduplication_token": token,
            "deduplicate_blocks_in_dependent_materialized_views": 1,
        }
        self._retrying(lambda: self.client.insert_arrow(name, table, settings=settings))

    def _retrying(self, op: Callable[[], Any]) -> Any:
        """Run ``op`` until it succeeds: a ClickHouse outage stalls the worker, never drops data."""
        delay = 0.2
        while True:
            try:
                return op()
            except Exception as exc:
                if self._should_stop():
                    raise
                self.retries += 1
                # The exception text may include the query, never credentials (the URL is not
                # part of clickhouse-connect's messages); keep it to one line.
                log.warning(
                    "ClickHouse call failed (%s: %s); retrying in %.1fs",
                    type(exc).__name__,
                    str(exc).splitlines()[0][:300] if str(exc) else "",
                    delay,
                )
                self.close()
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
