"""The shared decode cache: one decode per record for all agents, bounded, never a wrong hit."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime
from typing import Any

import pytest

from auditstream.producers.contract import Prompt, encode_event, make_event
from auditstream.settings import Settings, Topics
from auditstream.stream.app import create_app
from auditstream.stream.enrich import EnrichedEvent, KafkaCoords
from auditstream.stream.validate import DeadLetter, DecodeCache, decode


def raw_event(text: str = "x") -> bytes:
    return encode_event(
        make_event("prompt", "agent-1", Prompt(content=text), time=datetime.now(UTC))
    )


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: bytes | None, coords: KafkaCoords) -> Any:
        self.calls += 1
        return decode(raw, coords, _EMPTY)


class _Empty:
    def lookup(self, agent_id: str) -> None:
        return None


_EMPTY = _Empty()


def test_each_reader_gets_the_one_decode_then_it_is_dropped() -> None:
    cache, dec = DecodeCache(capacity=100, readers=3), Counting()
    raw, c = raw_event(), KafkaCoords("t", 0, 7)
    outs = [cache.get(raw, c, lambda: dec(raw, c)) for _ in range(3)]
    assert dec.calls == 1 and outs[0] is outs[1] is outs[2]
    assert isinstance(outs[0], EnrichedEvent) and len(cache) == 0  # all readers served
    cache.get(raw, c, lambda: dec(raw, c))  # a 4th read (a replay) decodes again
    assert dec.calls == 2


def test_other_bytes_at_the_same_coordinates_are_decoded_afresh() -> None:
    cache, dec = DecodeCache(capacity=100, readers=2), Counting()
    c = KafkaCoords("t", 1, 5)
    a, b = raw_event("first"), raw_event("second")
    out_a = cache.get(a, c, lambda: dec(a, c))
    out_b = cache.get(b, c, lambda: dec(b, c))
    assert dec.calls == 2 and out_a is not out_b
    assert isinstance(out_b, EnrichedEvent) and out_b.event.data.content == "second"
    # Equal bytes in another object (a redelivery) still hit.
    copy = bytes(bytearray(b))
    assert cache.get(copy, c, lambda: dec(copy, c)) is out_b and dec.calls == 2


def test_bounded_oldest_first_and_dead_letters_cached_too() -> None:
    cache, dec = DecodeCache(capacity=3, readers=2), Counting()
    for off in range(10):
        c = KafkaCoords("t", 0, off)
        cache.get(b"{", c, lambda c=c: dec(b"{", c))
    assert len(cache) == 3 and dec.calls == 10
    c9 = KafkaCoords("t", 0, 9)
    assert isinstance(cache.get(b"{", c9, lambda: dec(b"{", c9)), DeadLetter) and dec.calls == 10
    c0 = KafkaCoords("t", 0, 0)
    cache.get(b"{", c0, lambda: dec(b"{", c0))  # pushed out long ago: decoded again
    assert dec.calls == 11


def test_single_reader_is_a_pass_through() -> None:
    cache, dec = DecodeCache(capacity=10, readers=1), Counting()
    raw, c = raw_event(), KafkaCoords("t", 0, 0)
    cache.get(raw, c, lambda: dec(raw, c))
    cache.get(raw, c, lambda: dec(raw, c))
    assert dec.calls == 2 and len(cache) == 0


def test_create_app_counts_the_agents_on_the_events_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = types.ModuleType("auditstream_test_cache_plugin")

    def install(app: Any, ctx: Any) -> None:
        @app.agent(ctx.events_topic, name="p1")
        async def p1(stream: Any) -> None:  # pragma: no cover - never started
            async for _ in stream.events():
                pass

        async def handler(events: list[Any]) -> None:  # pragma: no cover - never started
            pass

        ctx.add_batch_handler(handler)

        @app.agent(ctx.findings_topic, name="p2")
        async def p2(stream: Any) -> None:  # pragma: no cover - never started
            async for _ in stream.events():
                pass

    plugin.install = install  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    app = create_app(
        Settings(topics=Topics("unitcache")), plugins=(plugin.__name__,), client_factory=list
    )
    ctx = app.stream_context  # type: ignore[attr-defined]
    # The sink, p1 and the batch handler; p2 reads another topic.
    assert ctx.decode_cache.readers == 3 and len(ctx.batch_handlers) == 1
    raw, c = raw_event(), KafkaCoords("unitcache.events", 0, 3)
    first = ctx.decode(raw, c)
    assert ctx.decode(raw, c) is first and ctx.decode(raw, c) is first
    assert len(ctx.decode_cache) == 0
