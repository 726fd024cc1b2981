"""The link-topic record format of the alerts plugin (pure: no broker)."""

from __future__ import annotations

import msgspec

from auditstream.alerts.stream import _decode_links, _Link, link_partition


def test_batched_record_round_trips() -> None:
    recs = [_Link("link", 1.0, "a1", "", "conv-1"), _Link("complaint", 2.0, "", "e9", "act-7")]
    assert _decode_links(msgspec.msgpack.encode(recs), b"links") == recs


def test_single_record_of_an_older_worker_takes_its_id_from_the_kafka_key() -> None:
    old = msgspec.msgpack.encode(["complaint", 2.0, "", "e9"])  # no key field yet
    assert _decode_links(old, b"conv-1") == [_Link("complaint", 2.0, "", "e9", "conv-1")]


def test_garbage_is_skipped() -> None:
    assert _decode_links(b"\xc1 not msgpack", b"k") == []
    assert _decode_links(None, None) == []


def test_links_and_complaints_agree_on_the_partition() -> None:
    # The one function both the announcing and the complaint side use; stable across runs.
    assert link_partition("conv-42", 6) == link_partition("conv-42", 6)
    assert {link_partition(f"conv-{i}", 6) for i in range(200)} == set(range(6))
