"""The faust application: source topic → validate → enrich → ClickHouse, plus plugins.

``create_app(settings)`` builds one faust app with one sink agent. Other areas add their own
agents (detectors, alert engine, policy rules) to the *same* app through plugins listed in
:data:`PLUGINS`: each such module exposes ``install(app, ctx: StreamContext)``. faust
reference-counts a message across every agent subscribed to the topic and commits its offset
only when all of them acked it, so every agent gets at-least-once delivery.

Delivery of the sink agent (proved by reading faust-streaming 0.15.3 ``Stream.noack_take``):
the agent takes up to ``sink_batch_size`` records or waits ``sink_batch_seconds``; records are
acked explicitly with ``stream.ack(event)`` only after the ClickHouse insert returned.
``noack_take`` itself never acks, so a crash, an exception or a stop before that point leaves
the offsets uncommitted and Kafka redelivers the batch; the replay guard then drops what
ClickHouse already holds (see stream/README.md).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auditstream.settings import Settings
from auditstream.stream.enrich import (
    DEFAULT_HASH_KEY,
    EmptyInventory,
    EnrichedEvent,
    Inventory,
    KafkaCoords,
)
from auditstream.stream.validate import DeadLetter, DecodeCache, decode

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

PLUGINS: tuple[str, ...] = ("auditstream.alerts.stream", "auditstream.governance.stream")


@dataclass
class StreamContext:
    """What a plugin gets: the app, the topics, the inventory and the pure decoder.

    ``inventory`` may be replaced by a plugin during ``install`` (governance installs a
    registry-backed one); the sink reads it at processing time, never caches it.
    """

    settings: Settings
    app: faust.App
    events_topic: Any  # faust TopicT of raw bytes (key and value serializer "raw")
    deadletter_topic: Any
    alerts_topic: Any
    findings_topic: Any
    inventory: Inventory = field(default_factory=EmptyInventory)
    hash_key: bytes = DEFAULT_HASH_KEY
    stats: dict[str, int] = field(default_factory=dict)
    # Shared by every agent on the events topic (see DecodeCache); ``create_app`` sets its
    # ``readers`` once the plugins are installed. With one reader it is a pass-through.
    decode_cache: DecodeCache = field(default_factory=DecodeCache)
    batch_handlers: list[Callable[[list[Any]], Awaitable[None]]] = field(default_factory=list)

    def add_batch_handler(self, handler: Callable[[list[Any]], Awaitable[None]]) -> None:
        """Have ``await handler(events)`` run on every micro-batch the sink agent takes.

        The cheap alternative to a plugin agent of its own on the events topic: faust's
        per-record cost (conductor fan-out, stream iteration, ack bookkeeping) is paid once
        for the sink and all handlers. ``events`` are the faust events of the batch (every
        record, including those the sink's replay guard will skip), in consumption order; read
        ``event.message`` and decode with :meth:`decode`. The batch is acked only after every
        handler returned *and* ClickHouse stored it, so a handler is at-least-once like the
        sink; an exception stops the sink agent without an ack (redelivery). A handler must not
        change the list and, like everything in the agent, should not block the event loop.
        """
        self.batch_handlers.append(handler)

    def decode(self, raw: bytes | None, coords: KafkaCoords) -> EnrichedEvent | DeadLetter:
        """The exact decode → validate → enrich the sink runs (never raises).

        Each record is decoded once per worker: the first agent on the events topic to ask
        decodes it, the others get the same (read-only) result from ``decode_cache``.
        """
        return self.decode_cache.get(raw, coords, lambda: self._decode(raw, coords))

    def _decode(self, raw: bytes | None, coords: KafkaCoords) -> EnrichedEvent | DeadLetter:
        return decode(
            raw,
            coords,
            self.inventory,
            max_bytes=self.settings.max_event_bytes,
            hash_key=self.hash_key,
        )


def broker_urls(bootstrap: str) -> list[str]:
    """``"h1:9092,h2:9092"`` → ``["kafka://h1:9092", "kafka://h2:9092"]`` (pure)."""
    hosts = [h.strip() for h in bootstrap.split(",") if h.strip()]
    if not hosts:
        raise ValueError("AUDITSTREAM_KAFKA_BOOTSTRAP is empty")
    return [h if "://" in h else f"kafka://{h}" for h in hosts]


def broker_credentials(extra: dict[str, str]) -> Any:
    """Map the librdkafka security pass-through (sasl.*, ssl.*) onto faust credentials."""
    import faust

    protocol = extra.get("security.protocol", "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=extra.get("ssl.ca.location"))
        if "ssl.certificate.location" in extra:
            context.load_cert_chain(
                extra["ssl.certificate.location"],
                extra.get("ssl.key.location"),
                extra.get("ssl.key.password"),
            )
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=extra.get("sasl.username"),
            password=extra.get("sasl.password"),
            mechanism=extra.get("sasl.mechanism", "PLAIN"),
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def app_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """faust settings (pure, so it is unit-tested); env-tunable timeouts for tests and dev."""
    import os

    session_timeout = float(os.environ.get("AUDITSTREAM_FAUST_SESSION_TIMEOUT", "30"))
    conf: dict[str, Any] = {
        "broker": broker_urls(settings.kafka_bootstrap),
        "store": "memory://",
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": session_timeout,
        "broker_heartbeat_interval": max(1.0, session_timeout / 10),
        "broker_rebalance_timeout": max(session_timeout * 2, 10.0),
        "broker_commit_interval": float(os.environ.get("AUDITSTREAM_FAUST_COMMIT_INTERVAL", "1.0")),
        "web_enabled": False,
        "producer_acks": -1,
        # Room for whole micro-batches in flight (the sink holds a batch unacked while inserting).
        "stream_buffer_maxsize": max(4096, settings.sink_batch_size * 2),
        "broker_max_poll_records": max(500, settings.sink_batch_size),
        "datadir": os.path.join(settings.state_dir, "faust"),
    }
    # Static group membership (KIP-345): a restarted worker with the same instance id takes
    # its partitions back at once instead of waiting for the broker to expire the old member
    # (and noida-db never expires a kill -9'd member: see stream/README.md).
    instance_id = os.environ.get("AUDITSTREAM_WORKER_INSTANCE_ID")
    if instance_id:
        conf["consumer_group_instance_id"] = instance_id
    creds = broker_credentials(dict(settings.kafka_extra))
    if creds is not None:
        conf["broker_credentials"] = creds
    conf.update(overrides)
    return conf


def load_plugins(names: tuple[str, ...] = PLUGINS) -> list[Any]:
    """Import plugin modules; a missing one is skipped, a broken one raises."""
    modules = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Missing module (or its not-yet-written package): skip. A missing *dependency*
            # inside an existing plugin is a broken plugin: raise.
            if exc.name is not None and name.startswith(exc.name):
                log.info("plugin %s not present; skipped", name)
                continue
            raise
        if not callable(getattr(module, "install", None)):
            raise TypeError(f"plugin {name} has no install(app, ctx) function")
        modules.append(module)
    return modules


def create_app(
    settings: Settings,
    *,
    inventory: Inventory | None = None,
    plugins: tuple[str, ...] = PLUGINS,
    client_factory: Callable[[], Any] | None = None,
    **faust_overrides: Any,
) -> faust.App:
    """Build the worker's faust app (sink agent + plugins); ``app.stream_context`` is the ctx."""
    import faust

    from auditstream.stream.guard import ReplayGuard
    from auditstream.stream.sink import ClickHouseSink

    app = faust.App(f"{settings.topics.prefix}-stream", **app_config(settings, **faust_overrides))
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw"}
    ctx = StreamContext(
        settings=settings,
        app=app,
        events_topic=app.topic(settings.topics.events, value_serializer="raw", **raw),
        deadletter_topic=app.topic(settings.topics.deadletter, value_serializer="raw", **raw),
        alerts_topic=app.topic(settings.topics.alerts, value_serializer="raw", **raw),
        findings_topic=app.topic(settings.topics.findings, value_serializer="raw", **raw),
        inventory=inventory if inventory is not None else EmptyInventory(),
        hash_key=settings.pii_hash_key.encode() if settings.pii_hash_key else DEFAULT_HASH_KEY,
    )
    app.stream_context = ctx  # type: ignore[attr-defined]

    if client_factory is None:
        from auditstream.stream.clickhouse import get_client

        def client_factory() -> Any:
            return get_client(settings)

    # While ClickHouse is down the sink retries forever; on shutdown it gives up (unacked).
    sink = ClickHouseSink(client_factory, should_stop=lambda: bool(app.should_stop))
    guard = ReplayGuard(sink.stored_offsets)
    ctx.stats.update(batches=0, events=0, dead_letters=0, replay_skipped=0)

    @app.on_partitions_assigned.connect
    async def _reset_guard(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # Another worker may have written these partitions meanwhile: re-check before trusting.
        guard.reset()

    @app.agent(ctx.events_topic, name="sink", concurrency=1)
    async def sink_agent(stream: Any) -> None:
        await _run_sink(ctx, sink, guard, stream)

    for module in load_plugins(plugins):
        module.install(app, ctx)
        log.info("plugin %s installed", module.__name__)
    # Every agent on the events topic (the sink and the plugins' agents) decodes each record
    # through ctx.decode: with N of them the cache hands one decode to all N. Bounded by what
    # can be in flight between the fastest and the slowest agent (channel buffers plus the
    # sink's take buffer and its two queued batches); a record pushed out is decoded again.
    readers = events_topic_agents(app, settings.topics.events) + len(ctx.batch_handlers)
    ctx.decode_cache.readers = readers
    ctx.decode_cache.capacity = 2 * app.conf.stream_buffer_maxsize + 4 * settings.sink_batch_size

    @app.on_partitions_revoked.connect
    async def _drop_decoded(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # Not needed for correctness (a hit requires identical bytes), but a revoked
        # partition's records will not be read here again.
        ctx.decode_cache.clear()

    @app.on_before_shutdown.connect
    async def _report_decodes(sender: Any, **kwargs: Any) -> None:
        cache = ctx.decode_cache
        log.info(
            "decode cache: %d hits, %d decodes (%d readers per record)",
            cache.hits,
            cache.misses,
            cache.readers,
        )

    return app


def events_topic_agents(app: Any, topic: str) -> int:
    """How many agents of ``app`` consume ``topic`` (each one is a reader of ctx.decode)."""
    n = 0
    for agent in app.agents.values():
        channel = getattr(agent, "channel", None)
        if topic in set(getattr(channel, "topics", ()) or ()):
            n += 1
    return n


async def _run_sink(ctx: StreamContext, sink: Any, guard: Any, stream: Any) -> None:
    """Take micro-batches and hand them to one writer task; ack only after the insert.

    The writer runs concurrently with the next ``noack_take`` (bounded by a 2-batch queue),
    so the buffer refills while ClickHouse inserts; one writer keeps batches (and acks) in
    order. A writer failure is re-raised here, so the agent crashes loudly instead of
    silently stalling (no ack happened for the failed batch, so nothing is lost).
    """
    settings = ctx.settings
    handlers = list(ctx.batch_handlers)
    pending: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=2)

    async def writer() -> None:
        while True:
            taken = await pending.get()
            await _process_batch(ctx, sink, guard, taken)
            for event in taken:
                await stream.ack(event)

    writer_task = asyncio.ensure_future(writer())
    try:
        async for taken in stream.noack_take(
            settings.sink_batch_size, within=settings.sink_batch_seconds
        ):
            # Plugins' batch handlers (e.g. governance rules) see every record before the
            # batch is queued; the writer acks it only after the insert, so after both.
            for handler in handlers:
                await handler(taken)
            put = asyncio.ensure_future(pending.put(taken))
            await asyncio.wait({put, writer_task}, return_when=asyncio.FIRST_COMPLETED)
            if writer_task.done():
                put.cancel()
                writer_task.result()  # re-raises the writer's exception
                raise RuntimeError("sink writer stopped unexpectedly")
    finally:
        writer_task.cancel()


async def _process_batch(ctx: StreamContext, sink: Any, guard: Any, taken: list[Any]) -> None:
    """Decode, drop replays, dead-letter to Kafka, insert; returns once durably stored."""
    loop = asyncio.get_running_loop()

    def coords_of(ev: Any) -> tuple[str, int, int]:
        m = ev.message
        return (m.topic, m.partition, m.offset)

    # The guard may query ClickHouse (only at start/rebalance): keep it off the event loop.
    skipped_before = guard.skipped
    fresh = await loop.run_in_executor(None, guard.filter, taken, coords_of)
    ctx.stats["replay_skipped"] = guard.skipped
    if guard.skipped != skipped_before:
        # Expected after a crash/rebalance; the line is the evidence that a replay was absorbed.
        log.warning(
            "replay guard: skipped %d redelivered records already in ClickHouse (total %d)",
            guard.skipped - skipped_before,
            guard.skipped,
        )
    good: list[EnrichedEvent] = []
    dead: list[DeadLetter] = []
    decode_one = ctx.decode
    for ev in fresh:
        m = ev.message
        out = decode_one(m.value, KafkaCoords(m.topic, m.partition, m.offset, m.key))
        if isinstance(out, DeadLetter):
            dead.append(out)
        else:
            good.append(out)
    if dead:
        # The dead-letter topic gets the exact original bytes and the reason in headers;
        # wait for the broker's ack before the batch can be acked (at-least-once).
        futures = []
        for d in dead:
            headers = [
                ("source_topic", d.topic.encode()),
                ("source_partition", str(d.partition).encode()),
                ("source_offset", str(d.offset).encode()),
                ("error_class", d.error_class.encode()),
                ("reason_field", d.field.encode()),
                ("reason", d.reason[:1000].encode()),
            ]
            futures.append(await ctx.deadletter_topic.send(key=d.key, value=d.raw, headers=headers))
        await asyncio.gather(*futures)
    if good or dead:
        await loop.run_in_executor(None, sink.write, good, dead)
    ctx.stats["batches"] += 1
    ctx.stats["events"] += len(good)
    ctx.stats["dead_letters"] += len(dead)
