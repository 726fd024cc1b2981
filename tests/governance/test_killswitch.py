"""Kill switch, SDK side: control records, the client seam, acknowledgements; real broker too."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from auditstream.producers.client import AgentSuspended
from auditstream.producers.contract import SuspensionAck
from auditstream.producers.killswitch import (
    ControlMessageError,
    KillSwitch,
    KillSwitchUnavailable,
    decode_control,
    encode_control,
    new_command,
)


class FakeClient:
    """Only the two things KillSwitch touches: the ``_suspended`` seam and ``emit``."""

    def __init__(self) -> None:
        self._suspended: dict[str, str] = {}
        self.emitted: list[Any] = []

    def emit(self, event: Any) -> str:
        self.emitted.append(event)
        return event.id


def test_command_needs_actor_and_reason() -> None:
    with pytest.raises(ValueError, match="actor"):
        new_command("a", "suspended", by=" ", reason="x")
    with pytest.raises(ValueError, match="reason"):
        new_command("a", "suspended", by="alice", reason="")


def test_control_record_round_trip_and_errors() -> None:
    cmd = new_command("a", "suspended", by="alice", reason="incident 7")
    assert decode_control(encode_control(cmd), b"a") == cmd
    with pytest.raises(ControlMessageError, match="does not match"):
        decode_control(encode_control(cmd), b"b")
    with pytest.raises(ControlMessageError, match="invalid control record"):
        decode_control(b'{"agent_id": "a"}')


def test_apply_fills_the_client_seam_and_acknowledges_only_served_agents() -> None:
    client = FakeClient()
    ks = KillSwitch(client, agents={"a"}, instance="i-1")  # type: ignore[arg-type]
    cmd_a = new_command("a", "suspended", by="alice", reason="incident")
    cmd_b = new_command("b", "suspended", by="alice", reason="incident")
    ks._apply(b"a", encode_control(cmd_a))
    ks._apply(b"b", encode_control(cmd_b))
    ks._apply(b"a", encode_control(cmd_a))  # replay of the same command: no second ack
    assert client._suspended == {"a": cmd_a.command_id, "b": cmd_b.command_id}
    assert [(e.subject, e.data.command_id) for e in client.emitted] == [("a", cmd_a.command_id)]
    ack = client.emitted[0].data
    assert isinstance(ack, SuspensionAck) and ack.state == "suspended" and ack.sdk_instance == "i-1"
    ks._apply(b"a", b"not json")  # bad record: ignored, state kept
    assert ks.is_suspended("a")
    ks._apply(b"a", encode_control(new_command("a", "resumed", by="bob", reason="fixed")))
    assert "a" not in client._suspended and not ks.is_suspended("a")
    ks._apply(b"b", None)  # tombstone
    assert client._suspended == {}


@pytest.mark.integration
@pytest.mark.parametrize("broker", ["noida", "tansu"])
def test_suspended_agent_is_refused_by_the_sdk(make_env: Any, broker: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from auditstream.governance.store import publish_command
    from auditstream.producers.client import AuditClient
    from auditstream.producers.contract import decode_event

    env = make_env(broker, partitions=2)
    settings = env.settings
    with AuditClient(settings) as client:
        missing = type(settings.topics)(settings.topics.prefix + "-missing")
        with pytest.raises(KillSwitchUnavailable):  # fail-closed when the topic is absent
            KillSwitch(client, type(settings)(**{**settings.__dict__, "topics": missing})).start(5)
        with KillSwitch(client, settings, agents={"bot"}, instance="sdk-1").start() as ks:
            client.action("bot", "a-before", "drafting")
            # The CLI says what it published, never that the agent stopped.
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "auditstream.cli",
                    "suspend",
                    "bot",
                    "--by",
                    "alice",
                    "--reason",
                    "incident 9",
                ],
                env=env.env_vars(),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            assert "published suspend command" in out and "not a confirmation" in out
            assert "stopped" not in out.split("not a confirmation")[0]
            deadline = time.monotonic() + 60
            while not ks.is_suspended("bot") and time.monotonic() < deadline:
                time.sleep(0.05)
            with pytest.raises(AgentSuspended, match="'bot' is suspended") as info:
                client.action("bot", "a-during", "refund")
            assert info.value.command_id in out
            client.prompt("bot", "still allowed: only actions are refused")
            publish_command(settings, new_command("bot", "resumed", by="bob", reason="fixed"))
            while ks.is_suspended("bot") and time.monotonic() < deadline:
                time.sleep(0.05)
            client.action("bot", "a-after", "drafting")
            client.flush(30)
    consumer = Consumer(settings.kafka_config(**{"group.id": "ks-test"}))
    parts = consumer.list_topics(settings.topics.events, timeout=10).topics[settings.topics.events]
    consumer.assign([TopicPartition(settings.topics.events, p, -2) for p in parts.partitions])
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 30
    while len(seen) < 5 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            ev = decode_event(msg.value())
            seen.append(
                (ev.kind, getattr(ev.data, "action_id", None) or getattr(ev.data, "state", ""))
            )
    consumer.close()
    assert seen == [
        ("action", "a-before"),
        ("suspension_ack", "suspended"),
        ("prompt", ""),
        ("suspension_ack", "resumed"),
        ("action", "a-after"),
    ]
