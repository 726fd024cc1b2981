"""Kill switch, agent side: follow the compacted control topic and refuse suspended agents.

The control topic (``<prefix>.control``, compacted, key = agent id) holds the latest
:class:`ControlMessage` per agent. :class:`KillSwitch` reads it from the beginning on a
background thread (plain partition assignment, no consumer group: every SDK process needs
*all* commands), keeps ``{agent_id: state}``, and drives the ``AuditClient`` seam:

- a suspended agent's ``AuditClient.action(...)`` raises ``AgentSuspended`` (checked in the
  client; one dict lookup per call);
- the SDK then acknowledges with a ``suspension_ack`` event (``SuspensionAck(command_id, state,
  sdk_instance)``) on the events topic, so the pipeline can verify the loop: an action after the
  acknowledgement, or no acknowledgement at all, raises "kill switch not honoured".

Startup is fail-closed: :meth:`KillSwitch.start` returns only after the whole topic has been
read (else raises :class:`KillSwitchUnavailable`), so an agent suspended while its process was
down cannot slip actions through before the follower caught up.

>>> ks = KillSwitch(client, settings, agents={"support-bot"}).start()   # doctest: +SKIP
>>> client.action("support-bot", "a1", "refund")                          # doctest: +SKIP
Traceback (most recent call last):
AgentSuspended: agent 'support-bot' is suspended (command '...')
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from auditstream.producers.contract import MAX_ID_CHARS, SuspensionAck, make_event
from auditstream.settings import Settings

if TYPE_CHECKING:
    from auditstream.producers.client import AuditClient

log = logging.getLogger(__name__)

ControlState = Literal["suspended", "resumed"]
_Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]


class ControlMessage(Struct, kw_only=True, frozen=True):
    """One suspend/resume command; the value of a control-topic record keyed by agent id."""

    command_id: _Id
    agent_id: _Id
    state: ControlState
    by: Annotated[str, Meta(min_length=1, max_length=256)]
    reason: Annotated[str, Meta(min_length=1, max_length=2048)]
    issued_at: Annotated[datetime, Meta(tz=True)]


class ControlMessageError(ValueError):
    """A control record that cannot be used (logged and skipped, never a crash)."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ControlMessage)


def new_command(agent_id: str, state: ControlState, *, by: str, reason: str) -> ControlMessage:
    """A fresh command (new id, now) after checking actor and reason are given."""
    if not by.strip():
        raise ValueError("a kill-switch command needs the actor (--by)")
    if not reason.strip():
        raise ValueError("a kill-switch command needs a reason (--reason)")
    return ControlMessage(
        command_id=str(uuid.uuid4()),
        agent_id=agent_id,
        state=state,
        by=by.strip(),
        reason=reason.strip(),
        issued_at=datetime.now(UTC),
    )


def encode_control(msg: ControlMessage) -> bytes:
    return _encoder.encode(msg)


def decode_control(
    raw: bytes | bytearray | memoryview | str, key: bytes | None = None
) -> ControlMessage:
    """Parse a control record; the record key must match the agent id when present."""
    try:
        msg = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ControlMessageError(f"invalid control record: {exc}") from None
    if key is not None and key.decode(errors="replace") != msg.agent_id:
        raise ControlMessageError(
            f"control record key {key!r} does not match agent id {msg.agent_id!r}"
        )
    return msg


class KillSwitchUnavailable(RuntimeError):
    """The control topic could not be read to its end in time (startup is fail-closed)."""


def sdk_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class CompactedFollower:
    """Reads every partition of a (compacted) topic from the beginning, forever, on a thread.

    ``apply(key, value)`` runs on the follower thread for each record (``value`` is ``None`` for
    a tombstone). :meth:`start` blocks until the end offsets seen at startup are reached.
    Also used by the pipeline to follow the registry and control topics on every worker.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        apply: Callable[[bytes | None, bytes | None], None],
        *,
        name: str = "auditstream-follower",
        config: dict[str, object] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self._apply = apply
        self._name = name
        self._config = dict(config or {})
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self.error: str | None = None

    def start(self, timeout: float = 15.0) -> CompactedFollower:
        from confluent_kafka import Consumer, TopicPartition

        conf = self.settings.kafka_config(
            **{
                # A throwaway group id: librdkafka wants one, but we assign partitions ourselves
                # and never commit, so nothing is shared between processes.
                "group.id": f"{self._name}-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                **self._config,
            }
        )
        consumer = Consumer(conf)
        deadline = time.monotonic() + timeout
        try:
            meta = consumer.list_topics(self.topic, timeout=max(0.1, deadline - time.monotonic()))
            topic_meta = meta.topics.get(self.topic)
            if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
                why = topic_meta.error if topic_meta is not None else "missing"
                raise KillSwitchUnavailable(f"topic {self.topic!r} is not available: {why}")
            partitions = sorted(topic_meta.partitions)
            ends: dict[int, int] = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p),
                    timeout=max(0.1, deadline - time.monotonic()),
                )
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(self.topic, p, -2) for p in partitions])  # beginning
        except KillSwitchUnavailable:
            consumer.close()
            raise
        except Exception as exc:  # KafkaException: broker unreachable, auth, ...
            consumer.close()
            raise KillSwitchUnavailable(f"cannot read {self.topic!r}: {exc}") from None
        self._consumer = consumer
        self._ends = ends
        if not ends:
            self._caught_up.set()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._caught_up.wait(max(0.0, deadline - time.monotonic())):
            self.close()
            raise KillSwitchUnavailable(
                f"could not read {self.topic!r} to its end within {timeout:g}s"
                + (f": {self.error}" if self.error else "")
            )
        return self

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def _run(self) -> None:
        consumer = self._consumer
        pending = dict(self._ends)
        while not self._stop.is_set():
            try:
                msg = consumer.poll(0.2)
            except Exception as exc:  # consumer closed under us, or a fatal client error
                self.error = str(exc)
                if self._stop.is_set():
                    return
                time.sleep(0.5)
                continue
            if msg is None:
                if pending:
                    self._check_positions(consumer, pending)
                continue
            if msg.error() is not None:
                self.error = str(msg.error())
                continue
            try:
                self._apply(msg.key(), msg.value())
            except Exception:  # a bad record must not stop the follower
                log.exception(
                    "skipping control/registry record at %s:%s", msg.partition(), msg.offset()
                )
            p = msg.partition()
            if p in pending and msg.offset() + 1 >= pending[p]:
                del pending[p]
                if not pending:
                    self._caught_up.set()

    def _check_positions(self, consumer: Any, pending: dict[int, int]) -> None:
        """Caught up also when the position passed the end offset without a record there
        (e.g. transaction markers or compaction at the tail)."""
        from confluent_kafka import TopicPartition

        try:
            positions = consumer.position([TopicPartition(self.topic, p) for p in pending])
        except Exception:  # not assigned yet
            return
        for tp in positions:
            if tp.offset >= 0 and tp.offset >= pending.get(tp.partition, 1 << 62):
                del pending[tp.partition]
        if not pending:
            self._caught_up.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # already closed
                self._consumer.close()
            self._consumer = None


class KillSwitch:
    """Follows the control topic and applies it to an :class:`AuditClient`.

    ``agents``: the agent ids this process runs. Only for these does the SDK acknowledge a
    suspension (an acknowledgement is a promise to stop; a process must not make it for an agent
    it does not run). ``None`` means every agent the client acts for, i.e. all of them.
    """

    def __init__(
        self,
        client: AuditClient,
        settings: Settings | None = None,
        *,
        agents: Iterable[str] | None = None,
        instance: str | None = None,
        on_change: Callable[[ControlMessage], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or Settings.from_env()
        self.agents = frozenset(agents) if agents is not None else None
        self.instance = instance or sdk_instance_id()
        self.state: dict[str, ControlMessage] = {}
        self._on_change = on_change
        self._follower = CompactedFollower(
            self.settings, self.settings.topics.control, self._apply, name="auditstream-killswitch"
        )

    def start(self, timeout: float = 15.0) -> KillSwitch:
        """Read the control topic to its end, then keep following it. Fail-closed on timeout."""
        self._follower.start(timeout)
        return self

    def close(self) -> None:
        self._follower.close()

    def __enter__(self) -> KillSwitch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_suspended(self, agent_id: str) -> bool:
        msg = self.state.get(agent_id)
        return msg is not None and msg.state == "suspended"

    def _serves(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # tombstone: the agent's control history was deleted → not suspended
            if key is not None:
                agent_id = key.decode(errors="replace")
                self.state.pop(agent_id, None)
                self.client._suspended.pop(agent_id, None)
            return
        try:
            msg = decode_control(value, key)
        except ControlMessageError as exc:
            log.warning("ignoring control record: %s", exc)
            return
        previous = self.state.get(msg.agent_id)
        # Enforce first (the client's seam: action() refuses agents in this dict), then
        # acknowledge, then publish the state: an ack never precedes enforcement, and whoever
        # watches is_suspended() sees the ack already queued.
        if msg.state == "suspended":
            self.client._suspended[msg.agent_id] = msg.command_id
        else:
            self.client._suspended.pop(msg.agent_id, None)
        if self._serves(msg.agent_id) and (
            previous is None or previous.command_id != msg.command_id
        ):
            self._acknowledge(msg)
        self.state[msg.agent_id] = msg
        if self._on_change is not None:
            self._on_change(msg)

    def _acknowledge(self, msg: ControlMessage) -> None:
        """Tell the pipeline this SDK now enforces ``msg`` (sent only after it is enforced)."""
        ack = SuspensionAck(command_id=msg.command_id, state=msg.state, sdk_instance=self.instance)
        try:
            self.client.emit(make_event("suspension_ack", msg.agent_id, ack))
        except Exception as exc:  # buffer full / closed: the pipeline will report no-ack
            log.warning(
                "could not acknowledge command %s for %s: %s", msg.command_id, msg.agent_id, exc
            )
