"""Governance plugin of the faust worker: inventory join, policy rules, kill-switch verification.

``install(app, ctx)``:

- follows the compacted registry topic on a thread (every worker reads *all* of it, no consumer
  group) and installs it as ``ctx.inventory``, so the sink's enrichment joins every event with
  its registry entry;
- follows the compacted control topic the same way and feeds commands to the rule engine;
- registers a batch handler on the sink agent's micro-batches of the raw events topic
  (``ctx.add_batch_handler``; no faust agent of its own, so faust's per-record cost is paid
  once): decode (``ctx.decode``, shared with the sink), run
  :class:`~auditstream.governance.rules.PolicyEngine`, publish violations as alert-engine
  :class:`~auditstream.alerts.model.Finding` s on ``<prefix>.findings`` (the same path as spikes);
  the sink acks a batch only after this handler returned and ClickHouse stored the batch;
- a 1 s timer fires expired deadlines (missing approvals, missing acknowledgements), writes the
  kill-switch verification log to ClickHouse and applies the auto-suspend policy.

Rule state lives in worker memory; after a restart it is rebuilt from what outlives the worker:
actions stored in ClickHouse within the approval window that no approval matched become pending
again (``restore_pending``), kill-switch verdicts come back from ``kill_switch_log``, and events
not yet committed are redelivered. Rate-limit windows and shadow-agent notices start afresh.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from auditstream.governance.registry import AgentEntry
from auditstream.governance.rules import (
    ControlCommand,
    KillSwitchRecord,
    PolicyEngine,
    Violation,
    should_auto_suspend,
)
from auditstream.governance.store import KILL_SWITCH_COLUMNS, decode_record
from auditstream.producers.killswitch import (
    CompactedFollower,
    ControlMessage,
    ControlMessageError,
    decode_control,
    new_command,
)
from auditstream.stream.enrich import AgentInfo

log = logging.getLogger(__name__)

POLICY_ACTOR = "auditstream-policy"


class RegistryInventory:
    """The registry as the stream sees it: latest record per agent (thread-safe reads)."""

    def __init__(self) -> None:
        self.entries: dict[str, AgentEntry] = {}
        self._info: dict[str, AgentInfo] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                agent_id = key.decode(errors="replace")
                self.entries.pop(agent_id, None)
                self._info.pop(agent_id, None)
            return
        try:
            record = decode_record(value)
        except Exception as exc:  # a bad registry record is skipped, never fatal
            log.warning("ignoring registry record: %s", exc)
            return
        e = record.entry
        self.entries[e.id] = e
        self._info[e.id] = AgentInfo(
            agent_id=e.id,
            name=e.name,
            owner=e.owners.accountable or "",
            team=e.team or "",
            risk_tier=e.risk_tier,
            autonomy_level=e.autonomy,
            registered=e.active,
        )

    def lookup(self, agent_id: str) -> AgentInfo | None:
        return self._info.get(agent_id)

    def entry(self, agent_id: str) -> AgentEntry | None:
        return self.entries.get(agent_id)


def to_finding(v: Violation) -> Any:
    from auditstream.alerts.model import Finding

    return Finding(
        alertname=v.rule,
        agent_id=v.agent_id,
        severity=v.severity,
        labels=v.labels,
        summary=v.summary[:1024],
        annotations=v.details,
        event_time=v.event_time,
        kind=v.kind,
        firing=v.firing,
        source="governance",
    )


def _aware(t: datetime) -> datetime:
    """clickhouse-connect returns naive datetimes for DateTime64(3, 'UTC') in some versions."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _command(msg: ControlMessage) -> ControlCommand:
    return ControlCommand(
        msg.command_id, msg.agent_id, msg.state, msg.by, msg.reason, msg.issued_at
    )


def install(app: Any, ctx: Any) -> None:
    settings = ctx.settings
    engine = PolicyEngine(
        approval_window=timedelta(seconds=settings.governance_approval_window_s),
        ack_timeout=timedelta(seconds=settings.governance_ack_timeout_s),
        shadow_grace=timedelta(seconds=settings.governance_shadow_grace_s),
    )
    inventory = RegistryInventory()
    controls: collections.deque[ControlMessage] = collections.deque()
    latest: dict[str, ControlMessage] = {}
    command_meta: dict[str, tuple[str, str]] = {}

    def on_control(key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        try:
            msg = decode_control(value, key)
        except ControlMessageError as exc:
            log.warning("ignoring control record: %s", exc)
            return
        latest[msg.agent_id] = msg
        remember(msg)
        controls.append(msg)

    def remember(msg: ControlMessage) -> None:
        # Actor and reason per command, for the verification log (bounded: oldest dropped).
        command_meta[msg.command_id] = (msg.by, msg.reason)
        while len(command_meta) > 10_000:
            command_meta.pop(next(iter(command_meta)))

    registry_follower = CompactedFollower(
        settings, settings.topics.registry, inventory.apply, name="auditstream-registry"
    )
    control_follower = CompactedFollower(
        settings, settings.topics.control, on_control, name="auditstream-control"
    )
    # Read both compacted topics to their end before the worker starts consuming events, so the
    # first events are not mistaken for shadow agents. Fails loudly if the topics are missing.
    registry_follower.start()
    control_follower.start()
    ctx.inventory = inventory
    app.governance = engine  # for inspection and tests
    state: dict[str, Any] = {"client": None, "restored": False}
    agent_partition: dict[str, int] = {}

    def ch() -> Any:
        if state["client"] is None:
            from auditstream.stream.clickhouse import get_client

            state["client"] = get_client(settings)
        return state["client"]

    def restore_kill_switch() -> dict[str, tuple[str, Any]]:
        """Commands already verified before a restart keep their verdict (no false no-ack)."""
        rows = (
            ch()
            .query(
                "SELECT command_id, argMax(status, at), max(at) FROM kill_switch_log "
                "WHERE status IN ('acknowledged', 'not_honoured', 'resumed') GROUP BY command_id"
            )
            .result_rows
        )
        return {str(c): (str(s), a) for c, s, a in rows}

    def restore_pending() -> list[tuple[Any, ...]]:
        """Stored actions within the approval window that no approval matched (yet).

        Memory dies with the worker but these rows do not: seeding them back means a crash
        between an action and its deadline cannot swallow the MissingApproval. Bounded by
        event time (partition pruning) and by when the rows were stored.
        """
        window_ms = int(engine.approval_window.total_seconds() * 1000)
        return (
            ch()
            .query(
                "SELECT agent_id, action_id, any(decision_type), min(event_time), "
                "min(ingest_time), any(kafka_partition) FROM events "
                "WHERE event_type = 'action' AND action_id != '' "
                "AND event_time >= now64(3) - toIntervalMillisecond({w:UInt64} + 3600000) "
                "AND ingest_time >= now64(3) - toIntervalMillisecond({w:UInt64}) "
                "AND (agent_id, action_id) NOT IN (SELECT agent_id, action_id FROM events "
                "  WHERE event_type = 'approval' AND action_id != '' "
                "  AND event_time >= now64(3) - toIntervalMillisecond(3 * {w:UInt64} + 3600000)) "
                "GROUP BY agent_id, action_id LIMIT 1000000",
                parameters={"w": window_ms},
            )
            .result_rows
        )

    def seed_pending(rows: list[tuple[Any, ...]]) -> int:
        seeded = 0
        for agent_id, action_id, decision_type, event_time, stored_at, partition in rows:
            agent_partition.setdefault(agent_id, int(partition))
            seeded += engine.seed_pending(
                agent_id,
                action_id,
                decision_type,
                _aware(event_time),
                _aware(stored_at),
                inventory.entry(agent_id),
            )
        return seeded

    def write_log(records: list[KillSwitchRecord], by: dict[str, tuple[str, str]]) -> None:
        rows = [
            [r.command_id, r.agent_id, r.status, r.at, r.detail, *by.get(r.command_id, ("", ""))]
            for r in records
        ]
        ch().insert("kill_switch_log", rows, column_names=list(KILL_SWITCH_COLUMNS))

    def ownership() -> Callable[[str], bool]:
        """Which agents this worker verifies now: those whose events partition it holds."""
        try:
            assigned = {
                tp.partition
                for tp in app.consumer.assignment()
                if tp.topic == settings.topics.events
            }
        except Exception:  # not started / rebalancing: verify nothing this tick
            assigned = set()
        every = len(assigned) >= settings.partitions  # a single worker owns every agent

        def owns(agent_id: str) -> bool:
            p = agent_partition.get(agent_id)
            return every if p is None else p in assigned

        return owns

    async def publish(violations: list[Violation]) -> None:
        from auditstream.alerts.stream import publish_finding

        for v in violations:
            await publish_finding(ctx.findings_topic, to_finding(v))
        for v in violations:
            current = latest.get(v.agent_id)
            cur_state = current.state if current is not None else None
            if should_auto_suspend(inventory.entry(v.agent_id), v.severity, cur_state):
                await auto_suspend(v)

    async def auto_suspend(v: Violation) -> None:
        from auditstream.governance.store import publish_command

        reason = f"auto-suspend on critical {v.rule}: {v.summary}"[:2000]
        cmd = new_command(v.agent_id, "suspended", by=POLICY_ACTOR, reason=reason)
        # Mark it locally at once so a burst of critical findings publishes one command.
        latest[v.agent_id] = cmd
        remember(cmd)
        loop = asyncio.get_running_loop()
        if "producer" not in state:
            from confluent_kafka import Producer

            state["producer"] = Producer(
                settings.kafka_config(**{"enable.idempotence": True, "acks": "all"})
            )
        try:
            await loop.run_in_executor(None, publish_command, settings, cmd, state["producer"])
            log.warning("auto-suspend command %s published for %s", cmd.command_id, v.agent_id)
        except Exception as exc:
            log.error("auto-suspend of %s failed to publish: %s", v.agent_id, exc)

    async def flush_log() -> None:
        records = engine.drain_log()
        if not records:
            return
        by = dict(command_meta)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, write_log, records, by)
        except Exception as exc:  # keep them for the next tick rather than lose the proof
            log.warning("kill_switch_log insert failed (%s); will retry", exc)
            engine.log[:0] = records

    async def drain_controls() -> None:
        if not state["restored"]:
            # Commands wait until earlier verdicts are known (else a restart would re-alert
            # every old suspension as unacknowledged); retry at most every 5 s.
            if asyncio.get_running_loop().time() < state.get("retry_at", 0.0):
                return
            loop = asyncio.get_running_loop()
            try:
                known = await loop.run_in_executor(None, restore_kill_switch)
                pending = await loop.run_in_executor(None, restore_pending)
            except Exception as exc:
                log.warning("could not restore governance state (%s); retrying in 5 s", exc)
                state["retry_at"] = loop.time() + 5.0
                return
            state["restored"] = True
            state["known"] = known
            seeded = seed_pending(pending)
            if seeded:
                log.info("governance: %d unreviewed action(s) restored from ClickHouse", seeded)
        apply_controls()

    def apply_controls() -> None:
        """Hand queued control commands to the engine (only once earlier verdicts are known)."""
        known = state.get("known", {})
        now = datetime.now(UTC)
        while controls:
            msg = controls.popleft()
            engine.on_command(_command(msg), now)
            verdict = known.get(msg.command_id)
            if verdict is not None:
                engine.restore(msg.agent_id, msg.command_id, verdict[0], verdict[1])

    async def governance_batch(taken: list[Any]) -> None:
        # Runs on the sink agent's micro-batches (ctx.add_batch_handler) instead of in an agent
        # of its own, so faust's per-record cost is not paid a second time. The sink acks the
        # batch only after this returned (findings and auto-suspend commands handed on) and
        # after ClickHouse stored it: a crash before that point redelivers the batch.
        await drain_controls()
        violations = evaluate(taken)
        if violations:
            await publish(violations)

    ctx.add_batch_handler(governance_batch)

    def evaluate(taken: list[Any]) -> list[Violation]:
        """Run the rules over one batch, in offset order (pure apart from the engine's state)."""
        from auditstream.stream.enrich import EnrichedEvent, KafkaCoords

        decode = ctx.decode  # shared with the sink through ctx.decode_cache: decoded once
        on_event = engine.on_event
        entry = inventory.entry
        now = datetime.now(UTC)  # processing time of the batch (deadlines, not matching)
        out: list[Violation] = []
        for event in taken:
            if controls and state["restored"]:
                # A command that arrived while this batch was read applies to the records
                # after it, exactly as with per-record processing.
                apply_controls()
            m = event.message
            res = decode(m.value, KafkaCoords(m.topic, m.partition, m.offset, m.key))
            if not isinstance(res, EnrichedEvent) or not res.agent_id:
                continue  # dead letters are the sink's job
            agent_partition[res.agent_id] = m.partition
            violations = on_event(res.event, entry(res.agent_id), now)
            if violations:
                out.extend(violations)
        return out

    @app.timer(1.0)
    async def governance_tick() -> None:
        await drain_controls()
        violations = engine.tick(datetime.now(UTC), owns=ownership(), lookup=inventory.entry)
        if violations:
            await publish(violations)
        await flush_log()

    @app.on_before_shutdown.connect
    async def _close(sender: Any, **kwargs: Any) -> None:
        registry_follower.close()
        control_follower.close()
        if state["client"] is not None:
            state["client"].close()
        if "producer" in state:
            state["producer"].flush(10.0)
