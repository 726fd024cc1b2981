"""The alert path's faust plugin: signals, complaint linking, alert engine, ticks and delivery.

Installed by ``auditstream.stream.app.create_app`` through ``install(app, ctx)``. All real work
is in pure modules (signals, engine, delivery); this file only wires them to topics and tables.

Agents (all in the worker's single faust app):

``alerts-signals``  on ``<prefix>.events`` (key = agent id), in batches (``noack_take``, acked
    only after the batch's state writes and sends were handed to faust, which flushes the
    producer before committing). Per agent an :class:`AgentSignals` in the changelogged table
    ``alerts-signals`` (so a restart keeps warm baselines), written at most once per batch.
    Findings go to ``<prefix>.findings``. Complaints are *not* scored here: they go to the link
    topic (or, naming their agent, straight to the complaints topic).
``alerts-links``    on the internal topic ``<prefix>.alerts-links``, partitioned by conversation/
    action id (:func:`link_partition`; one record = a list of a batch's links and complaints
    for one partition), also in batches: remembers which agent handled a conversation/action
    (table ``alerts-conversations``, bounded by a TTL) and resolves complaints that name no
    agent (one that arrives before its link waits in the table until the link comes); every
    complaint is scored by one per-agent complaint signal (table ``alerts-complaints``), so
    both paths count together.
``alerts-complaints`` on ``<prefix>.alerts-complaints`` keyed by agent id.
``alerts-engine``   on ``<prefix>.findings`` (key = fingerprint): the pure engine, state in the
    table ``alerts-engine``; alert versions go to ``<prefix>.alerts`` (the outbox).
``alerts-ticks``    on ``<prefix>.alerts-ticks``: faust tables can only change inside stream
    iteration, so a wall-clock timer sends one tick per partition into this topic and this agent
    advances event time for that partition's signal and engine states (silence detection,
    auto-resolve). Event time of a tick = the partition's newest event time + the wall time
    elapsed since it was seen, so steady consumer lag never fakes a silence.
``alerts-delivery`` on ``<prefix>.alerts``: writes ``alerts``/``incidents`` rows to ClickHouse,
    then delivers (Alertmanager, PagerDuty, Slack, webhook) and records ``alert_deliveries``.
    A separate topic and agent: a slow receiver holds back deliveries, never the event stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec

from auditstream.alerts.engine import AlertState, EnginePolicy, incident_for_alert, is_idle, step
from auditstream.alerts.engine import tick as engine_tick
from auditstream.alerts.model import (
    Alert,
    Finding,
    FindingError,
    decode_alert,
    decode_finding,
    encode_alert,
    encode_finding,
)
from auditstream.alerts.signals import (
    ALL_SIGNALS,
    COMPLAINT_BURST,
    AgentSignals,
    Observation,
    SignalConfig,
    observation_from_enriched,
)

log = logging.getLogger(__name__)

TICK_S = float(os.environ.get("AUDITSTREAM_ALERTS_TICK_S", "5"))
LINK_TTL_S = float(os.environ.get("AUDITSTREAM_ALERTS_LINK_TTL_S", str(7 * 86400)))
PERSIST_S = float(os.environ.get("AUDITSTREAM_ALERTS_PERSIST_S", "30"))
LINK_CACHE = 100_000
MAX_PENDING = 20  # complaints waiting for their conversation's link, per conversation
PURGE_EVERY_S = 300.0  # conversations per worker we remember having announced
# Records per batch of the agents on high-volume topics (events, links) and how long a batch
# may wait to fill; default: the sink's micro-batch bounds.
BATCH_SIZE = int(os.environ.get("AUDITSTREAM_ALERTS_BATCH_SIZE", "0"))
BATCH_S = float(os.environ.get("AUDITSTREAM_ALERTS_BATCH_SECONDS", "0"))
MAX_LINKS_PER_RECORD = 2000


async def publish_finding(findings_topic: Any, finding: Finding) -> None:
    """Send a finding to ``<prefix>.findings`` keyed by its fingerprint (from any faust agent).

    ``findings_topic`` is ``ctx.findings_topic`` (a raw-bytes faust topic).
    """
    await findings_topic.send(key=finding.fingerprint().encode(), value=encode_finding(finding))


class _Link(msgspec.Struct, array_like=True):
    """``agent`` handled conversation/action ``key``; or a complaint about ``key`` to attribute.

    On ``<prefix>.alerts-links`` a record is a msgpack *list* of these (one record per
    partition per batch of events); a bare one (older workers) carries its id as the Kafka key.
    """

    kind: str  # "link" | "complaint"
    t: float
    agent: str = ""
    event_id: str = ""
    key: str = ""  # the conversation or action id (in batched records)


def link_partition(key: str, partitions: int) -> int:
    """The links-topic partition of a conversation/action id (links and complaints agree)."""
    return zlib.crc32(key.encode()) % partitions


def _decode_links(value: bytes | None, key: bytes | None) -> list[_Link]:
    try:
        return msgspec.msgpack.decode(value or b"", type=list[_Link])
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        rec = msgspec.msgpack.decode(value or b"", type=_Link)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []
    rec.key = rec.key or (key or b"").decode(errors="replace")
    return [rec]


def _set_current_event(event: Any) -> None:
    """Make faust's table writes belong to ``event``'s partition.

    A faust table write takes its changelog partition from the *current event* (the context
    variable ``faust.streams.current_event()`` that stream iteration sets). Records taken with
    ``noack_take`` are processed after iteration moved on, so the agent sets it to the record
    the write belongs to. A context variable: only this agent's task sees the change.
    """
    from faust.streams import _current_event

    _current_event.set(weakref.ref(event))


class EventClock:
    """Event-time watermark per partition (or per agent) advanced by wall time between events."""

    def __init__(self) -> None:
        self._seen: dict[Any, tuple[float, float]] = {}  # partition → (event time, wall time)

    def observe(self, partition: Any, t: float) -> None:
        cur = self._seen.get(partition)
        if cur is None or t > cur[0]:
            self._seen[partition] = (t, time.time())

    def now(self, partition: Any) -> float | None:
        cur = self._seen.get(partition)
        return None if cur is None else cur[0] + (time.time() - cur[1])

    def now_any(self) -> float | None:
        """The furthest any partition's clock has got (for partitions with no events)."""
        wall = time.time()
        return max((t + (wall - w) for t, w in self._seen.values()), default=None)

    def latest(self) -> float | None:
        """The newest event time seen in any partition (not advanced by wall time)."""
        return max((t for t, _ in self._seen.values()), default=None)

    def partitions(self) -> list[Any]:
        return list(self._seen)


class _Conv(msgspec.Struct, array_like=True):
    """Table value of ``alerts-conversations``: who handled it, when, complaints waiting."""

    agent: str
    t: float
    pending: list[_Link] = msgspec.field(default_factory=list)


def _pack(partition: int, blob: bytes) -> bytes:
    # The partition rides along so a tick for partition p finds exactly p's keys after recovery.
    return partition.to_bytes(2, "big") + blob


def _unpack(value: bytes) -> tuple[int, bytes]:
    return int.from_bytes(value[:2], "big"), value[2:]


class SignalStore:
    """Per-agent :class:`AgentSignals` kept live in memory, persisted to a faust table.

    Serialising the whole state into the changelog on every event would cost kilobytes per
    event; instead a state is written when it produced findings (alert state changes must
    survive) and otherwise at most every ``persist_s`` of event time. A crash therefore loses at
    most that much baseline history, never an open condition. The cache is dropped on every
    rebalance, so a state is only ever trusted by the worker that owns its partition.
    """

    def __init__(self, table: Any, config: SignalConfig, labels: Any, persist_s: float) -> None:
        self.table, self.config, self.labels, self.persist_s = table, config, labels, persist_s
        self.live: dict[str, tuple[AgentSignals, int, float]] = {}  # agent → (sig, part, saved)

    def get(self, agent: str, partition: int) -> AgentSignals:
        hit = self.live.get(agent)
        if hit is not None:
            return hit[0]
        value = self.table.get(agent)
        sig = (
            AgentSignals(agent, self.config)
            if value is None
            else AgentSignals.from_bytes(_unpack(value)[1], self.config)
        )
        sig.set_labels(self.labels(agent))
        self.live[agent] = (sig, partition, sig.s.watermark)
        return sig

    def done(
        self, agent: str, partition: int, findings: Sequence[Finding] | bool, t: float
    ) -> None:
        """Call inside stream iteration after ``observe``/``tick`` on ``get(agent)`` (once per
        batch is enough: ``findings`` is then whether any of the batch's calls produced one)."""
        sig, _, saved = self.live[agent]
        if findings or t - saved >= self.persist_s:
            self.table[agent] = _pack(partition, sig.to_bytes())
            saved = t
        self.live[agent] = (sig, partition, saved)

    def agents_of(self, partition: int) -> list[str]:
        keys = {k for k, v in self.table.items() if v is not None and _unpack(v)[0] == partition}
        keys |= {k for k, (_, p, _) in self.live.items() if p == partition}
        return sorted(keys)

    def clear(self) -> None:
        self.live.clear()


def install(app: Any, ctx: Any) -> None:
    settings = ctx.settings
    prefix = settings.topics.prefix
    parts = settings.partitions
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    links_topic = app.topic(f"{prefix}.alerts-links", partitions=parts, internal=True, **raw)
    complaints_topic = app.topic(
        f"{prefix}.alerts-complaints", partitions=parts, internal=True, **raw
    )
    ticks_topic = app.topic(f"{prefix}.alerts-ticks", partitions=parts, internal=True, **raw)
    table_kw = {"default": None, "key_type": str, "value_type": bytes, "partitions": parts}
    signals_table = app.Table("alerts-signals", **table_kw)
    complaints_table = app.Table("alerts-complaints", **table_kw)
    conversations = app.Table("alerts-conversations", **table_kw)
    engine_table = app.Table("alerts-engine", **table_kw)

    config = SignalConfig(enabled=tuple(s for s in ALL_SIGNALS if s != COMPLAINT_BURST))
    complaint_config = SignalConfig(enabled=(COMPLAINT_BURST,))
    policy = EnginePolicy()
    events_clock, findings_clock = EventClock(), EventClock()
    # Per agent too: a tick never advances an agent past its own newest event plus the wall time
    # since that event was seen. Otherwise an agent whose *older* events are still being
    # consumed (a backfill into a partition whose clock other agents already moved to the
    # present) would look silent while its events are arriving.
    agent_clock = EventClock()
    announced: OrderedDict[str, None] = OrderedDict()
    ctx.stats.update(
        alerts_findings=0, alerts_alerts=0, alerts_unlinked_complaints=0, alerts_bad_findings=0
    )

    def labels_for(agent_id: str) -> dict[str, str]:
        info = ctx.inventory.lookup(agent_id) if agent_id else None
        if info is None:
            return {}
        return {"team": info.team, "owner": info.owner, "risk_tier": info.risk_tier}

    async def emit(findings: list[Finding]) -> None:
        for f in findings:
            ctx.stats["alerts_findings"] += 1
            await publish_finding(ctx.findings_topic, f)

    signal_store = SignalStore(signals_table, config, labels_for, PERSIST_S)
    complaint_store = SignalStore(complaints_table, complaint_config, labels_for, PERSIST_S)

    @app.on_partitions_revoked.connect
    async def _drop_caches(sender: Any, revoked: Any, **kwargs: Any) -> None:
        signal_store.clear()
        complaint_store.clear()

    batch_size = BATCH_SIZE or settings.sink_batch_size
    batch_s = BATCH_S or settings.sink_batch_seconds

    def signals_batch(
        taken: list[Any],
    ) -> tuple[dict[int, list[_Link]], list[_Link], list[Finding]]:
        """Score one batch of events (synchronous: no await, so no table write interleaves).

        Returns what to send: link records per links partition, complaints naming their agent,
        findings. Each touched agent's state is handed to the store once, at the end.
        """
        from auditstream.stream.enrich import EnrichedEvent, KafkaCoords

        links: dict[int, list[_Link]] = {}
        named: list[_Link] = []
        findings: list[Finding] = []
        touched: dict[str, list[Any]] = {}  # agent → [partition, found, last t, last event]
        decode = ctx.decode
        for event in taken:
            msg = event.message
            res = decode(msg.value, KafkaCoords(msg.topic, msg.partition, msg.offset, msg.key))
            if not isinstance(res, EnrichedEvent):
                continue  # the sink dead-letters it
            t = res.event.time.timestamp()
            data = res.event.data
            conv, action = data.conversation_id, getattr(data, "action_id", None)
            if res.kind == "complaint":
                if res.agent_id:
                    named.append(_Link("complaint", t, res.agent_id, res.event.id))
                elif conv or action:
                    k = conv or action
                    rec = _Link("complaint", t, "", res.event.id, k)
                    links.setdefault(link_partition(k, parts), []).append(rec)
                else:
                    ctx.stats["alerts_unlinked_complaints"] += 1
                continue
            agent = res.agent_id
            p = msg.partition
            events_clock.observe(p, t)
            for k in (conv, action):
                if k and k not in announced:
                    announced[k] = None
                    if len(announced) > LINK_CACHE:
                        announced.popitem(last=False)
                    rec = _Link("link", t, agent, "", k)
                    links.setdefault(link_partition(k, parts), []).append(rec)
            found = signal_store.get(agent, p).observe(observation_from_enriched(res))
            if found:
                findings += found
            state = touched.get(agent)
            if state is None:
                touched[agent] = [p, bool(found), t, event]
            else:
                state[1] = state[1] or bool(found)
                state[2], state[3] = max(state[2], t), event
        for agent, (p, found, t, event) in touched.items():
            agent_clock.observe(agent, t)
            _set_current_event(event)  # the table write goes to this agent's partition
            signal_store.done(agent, p, found, t)
        return links, named, findings

    @app.agent(ctx.events_topic, name="alerts-signals")
    async def signals_agent(stream: Any) -> None:
        # Batches, acked explicitly once everything derived from them is handed to the
        # producer (faust flushes the producer before it commits offsets): at-least-once.
        async for taken in stream.noack_take(batch_size, within=batch_s):
            links, named, findings = signals_batch(taken)
            for p, recs in links.items():
                for i in range(0, len(recs), MAX_LINKS_PER_RECORD):
                    value = msgspec.msgpack.encode(recs[i : i + MAX_LINKS_PER_RECORD])
                    await links_topic.send(key=b"links", value=value, partition=p)
            for rec in named:
                await complaints_topic.send(
                    key=rec.agent.encode(), value=msgspec.msgpack.encode(rec)
                )
            await emit(findings)
            for event in taken:
                await stream.ack(event)

    def link_one(rec: _Link, p: int, attribute: list[_Link]) -> None:
        """One link or complaint of the links topic (inside the batch, current event set)."""
        key = rec.key
        value = conversations.get(key)
        link = None if value is None else msgspec.msgpack.decode(_unpack(value)[1], type=_Conv)
        if rec.kind == "link":
            known = link is not None and link.agent == rec.agent and not link.pending
            if known and rec.t - link.t < LINK_TTL_S / 7:  # type: ignore[union-attr]
                return  # already known (a re-announcement after a restart)
            pending = link.pending if link is not None else []
            conversations[key] = _pack(p, msgspec.msgpack.encode(_Conv(rec.agent, rec.t)))
            for c in pending:  # complaints that arrived before the link: attribute now
                c.agent = rec.agent
                attribute.append(c)
            return
        if link is None or not link.agent:
            # Not linked (yet): keep a few, in case the conversation's link is still in
            # flight on another partition; the TTL purge drops them otherwise.
            link = link or _Conv("", rec.t)
            if len(link.pending) < MAX_PENDING:
                link.pending.append(rec)
                conversations[key] = _pack(p, msgspec.msgpack.encode(link))
            ctx.stats["alerts_unlinked_complaints"] += 1
            return
        rec.agent = link.agent
        attribute.append(rec)

    @app.agent(links_topic, name="alerts-links")
    async def links_agent(stream: Any) -> None:
        async for taken in stream.noack_take(batch_size, within=batch_s):
            attribute: list[_Link] = []
            for event in taken:
                msg = event.message
                _set_current_event(event)
                for rec in _decode_links(msg.value, msg.key):
                    if rec.key:
                        link_one(rec, msg.partition, attribute)
            for rec in attribute:
                await complaints_topic.send(
                    key=rec.agent.encode(), value=msgspec.msgpack.encode(rec)
                )
            for event in taken:
                await stream.ack(event)

    @app.agent(complaints_topic, name="alerts-complaints")
    async def complaints_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                rec = msgspec.msgpack.decode(event.value, type=_Link)
            except msgspec.DecodeError:
                continue
            p = event.message.partition
            sig = complaint_store.get(rec.agent, p)
            ob = Observation(t=rec.t, agent_id=rec.agent, kind="complaint", event_id=rec.event_id)
            findings = sig.observe(ob)
            complaint_store.done(rec.agent, p, findings, rec.t)
            await emit(findings)

    @app.agent(ctx.findings_topic, name="alerts-engine")
    async def engine_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                finding = decode_finding(event.value)
            except FindingError as exc:
                ctx.stats["alerts_bad_findings"] += 1
                log.warning(
                    "bad finding at %s/%d: %s", event.message.topic, event.message.offset, exc
                )
                continue
            findings_clock.observe(event.message.partition, finding.event_time.timestamp())
            fp = finding.fingerprint()
            value = engine_table.get(fp)
            state = None if value is None else AlertState.from_bytes(_unpack(value)[1])
            state, alerts, _ = step(state, finding, policy)
            engine_table[fp] = _pack(event.message.partition, state.to_bytes())
            await _send_alerts(alerts)

    async def _send_alerts(alerts: list[Alert]) -> None:
        for a in alerts:
            ctx.stats["alerts_alerts"] += 1
            await ctx.alerts_topic.send(key=a.fingerprint.encode(), value=encode_alert(a))

    @app.timer(interval=TICK_S)
    async def send_ticks() -> None:
        for p in range(parts):
            # A partition of the events topic may carry no agent at all while the same-numbered
            # partition of the complaints topic holds complaint signals (keyed differently):
            # those follow the worker's furthest clock, or they would never resolve.
            now_events = events_clock.now(p) or events_clock.now_any()
            now_findings = findings_clock.now(p)
            latest = events_clock.latest()
            value = msgspec.msgpack.encode([now_events or 0.0, now_findings or 0.0, latest or 0.0])
            await ticks_topic.send(key=b"tick", value=value, partition=p)

    last_purge: dict[int, float] = {}

    async def purge_links(p: int, now: float) -> None:
        """Bound the conversation map: drop links (and waiting complaints) older than the TTL."""
        dropped = 0
        for key, value in list(conversations.items()):
            if value is None or _unpack(value)[0] != p:
                continue
            link = msgspec.msgpack.decode(_unpack(value)[1], type=_Conv)
            if now - link.t > LINK_TTL_S:
                del conversations[key]
                dropped += 1
        if dropped:
            log.info("alerts: dropped %d expired conversation links (partition %d)", dropped, p)

    @app.agent(ticks_topic, name="alerts-ticks")
    async def ticks_agent(stream: Any) -> None:
        async for event in stream.events():
            p = event.message.partition
            now_events, now_findings, *rest = msgspec.msgpack.decode(event.value)
            # Silence is judged at the newest event anyone sent: if all producers stop, no agent
            # is silent on its own (docs/alerts.md, "Ticks").
            latest = (rest[0] if rest else 0.0) or None
            if now_events:
                for store in (signal_store, complaint_store):
                    for agent in store.agents_of(p):
                        now = now_events
                        if store is signal_store:
                            now = min(now, agent_clock.now(agent) or now)
                        sig = store.get(agent, p)
                        findings = sig.tick(now, latest)
                        store.done(agent, p, findings, now)
                        await emit(findings)
                if time.monotonic() - last_purge.get(p, 0.0) >= PURGE_EVERY_S:
                    last_purge[p] = time.monotonic()
                    await purge_links(p, now_events)
            if now_findings:
                for fp, value in list(engine_table.items()):
                    if value is None or _unpack(value)[0] != p:
                        continue
                    state, alerts, _ = engine_tick(
                        AlertState.from_bytes(_unpack(value)[1]), now_findings, policy
                    )
                    if is_idle(state, now_findings, policy):
                        del engine_table[fp]
                    elif alerts:
                        engine_table[fp] = _pack(p, state.to_bytes())
                    await _send_alerts(alerts)

    _install_delivery(app, ctx)


def _install_delivery(app: Any, ctx: Any) -> None:
    from auditstream.alerts.delivery import Deliverer, load_config
    from auditstream.alerts.store import (
        insert_alerts,
        insert_deliveries,
        insert_incidents,
        load_active,
    )

    config = load_config()
    state: dict[str, Any] = {}
    ctx.stats.update(alerts_delivered=0, alerts_delivery_failures=0)

    def client() -> Any:
        if "client" not in state:
            from auditstream.stream.clickhouse import get_client

            state["client"] = get_client(ctx.settings)
        return state["client"]

    async def deliverer() -> Deliverer:
        if "deliverer" not in state:
            d = Deliverer(config)
            if config.receivers:
                # Firing alerts from before a restart must keep being re-sent to Alertmanager.
                try:
                    for alert in await asyncio.to_thread(load_active, client()):
                        d.remember(alert)
                except Exception as exc:  # a missing table or server: start empty, say so
                    log.warning("could not reload active alerts: %s", exc)
            state["deliverer"] = d
        return state["deliverer"]

    async def store(fn: Any, rows: list[Any]) -> None:
        # Retry ClickHouse a few times; the offset is only acked after this returns.
        for attempt in range(5):
            try:
                await asyncio.to_thread(fn, client(), rows)
                return
            except Exception as exc:  # clickhouse-connect raises several unrelated types
                log.warning("alert store attempt %d failed: %s", attempt + 1, exc)
                state.pop("client", None)
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        raise RuntimeError("ClickHouse unavailable for the alert path")

    @app.agent(ctx.alerts_topic, name="alerts-delivery")
    async def delivery_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                alert = decode_alert(event.value)
            except FindingError as exc:
                log.warning("bad alert record at offset %d: %s", event.message.offset, exc)
                continue
            await store(insert_alerts, [alert])
            await store(insert_incidents, [incident_for_alert(alert)])
            records = await (await deliverer()).deliver(alert)
            _count(records)
            await store(insert_deliveries, records)

    def _count(records: list[Any]) -> None:
        for r in records:
            key = "alerts_delivered" if r.outcome == "ok" else "alerts_delivery_failures"
            ctx.stats[key] += 1

    resend = min((r.resend_s for r in config.receivers if r.type == "alertmanager"), default=0.0)
    if resend > 0:

        @app.timer(interval=resend)
        async def resend_active() -> None:
            records = await (await deliverer()).resend_active()
            _count(records)
            if records:
                await store(insert_deliveries, records)
