"""Pure unit tests: findings, fingerprints, and the alert engine's state machine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auditstream.alerts.engine import AlertState, Engine, EnginePolicy, group_key
from auditstream.alerts.model import (
    Finding,
    FindingError,
    decode_alert,
    decode_finding,
    encode_alert,
    encode_finding,
    fingerprint,
)

T0 = 1_767_225_600.0


def finding(t: float, firing: bool = True, **kw: object) -> Finding:
    base: dict[str, object] = {
        "alertname": "ErrorSpike",
        "agent_id": "agent-1",
        "severity": "critical",
        "value": 0.4,
        "threshold": 0.02,
        "summary": "errors",
    }
    base.update(kw)
    return Finding(event_time=datetime.fromtimestamp(T0 + t, UTC), firing=firing, **base)  # type: ignore[arg-type]


def test_fingerprint_is_stable_order_free_and_ignores_numbers() -> None:
    a = finding(0, labels={"team": "payments", "owner": "ana"})
    b = finding(50, value=0.9, labels={"owner": "ana", "team": "payments"}, summary="other")
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 16
    assert a.fingerprint() != finding(0, agent_id="agent-2").fingerprint()
    assert a.fingerprint() != finding(0, labels={"team": "x"}).fingerprint()
    # Length-prefixing: moving a separator between key and value changes the hash.
    assert fingerprint({"a": "b=c"}) != fingerprint({"a=b": "c"})


def test_reserved_labels_cannot_be_overridden_by_extra_labels() -> None:
    f = finding(0, labels={"alertname": "Spoof", "agent_id": "other", "team": "t"})
    assert f.identity()["alertname"] == "ErrorSpike"
    assert f.identity()["agent_id"] == "agent-1"


def test_finding_roundtrip_and_bad_input() -> None:
    f = finding(0, labels={"team": "t"}, annotations={"x": "1"}, kind="oneshot")
    assert decode_finding(encode_finding(f)) == f
    with pytest.raises(FindingError, match="alertname"):
        decode_finding(b'{"alertname":"has space","event_time":"2026-01-01T00:00:00Z"}')
    with pytest.raises(FindingError):
        decode_finding(b"not json")
    with pytest.raises(FindingError, match="event_time"):
        decode_finding(b'{"alertname":"X"}')
    with pytest.raises(FindingError):  # naive timestamps are ambiguous
        decode_finding(b'{"alertname":"X","event_time":"2026-01-01T00:00:00"}')


def test_dedup_fires_once_and_resolves_after_hold() -> None:
    eng = Engine(EnginePolicy(resolve_after_s=60))
    alerts, incidents = eng.process(finding(0))
    assert [a.status for a in alerts] == ["firing"]
    assert [i.action for i in incidents] == ["opened"]
    for t in range(10, 300, 10):  # the condition holds: no new alert versions
        assert eng.process(finding(t)) == ([], [])
    assert eng.process(finding(300, firing=False)) == ([], [])  # clear, but held
    assert eng.tick(T0 + 330) == ([], [])
    alerts, incidents = eng.tick(T0 + 361)
    assert [a.status for a in alerts] == ["resolved"]
    assert alerts[0].ends_at == datetime.fromtimestamp(T0 + 300, UTC)  # when it cleared
    assert alerts[0].incident_id == incidents[0].incident_id
    assert incidents[0].action == "resolved" and incidents[0].by == "auto"
    assert alerts[0].version == 2


def test_refire_during_hold_keeps_one_incident() -> None:
    eng = Engine(EnginePolicy(resolve_after_s=60))
    first, _ = eng.process(finding(0))
    eng.process(finding(100, firing=False))
    assert eng.process(finding(130)) == ([], [])  # back before the hold expired
    assert eng.tick(T0 + 200) == ([], [])
    assert eng.active()[0].incident_id == first[0].incident_id


def test_pending_for_s_and_clear_before_firing() -> None:
    eng = Engine(EnginePolicy(for_s=60))
    assert eng.process(finding(0)) == ([], [])
    assert eng.process(finding(30)) == ([], [])
    eng.process(finding(40, firing=False))  # cleared while pending: never fires
    assert eng.tick(T0 + 200) == ([], [])
    assert eng.process(finding(300)) == ([], [])
    alerts, _ = eng.process(finding(361))
    assert [a.status for a in alerts] == ["firing"]
    assert alerts[0].starts_at == datetime.fromtimestamp(T0 + 300, UTC)


def test_oneshot_resolves_after_quiet_period_and_repeats_extend_it() -> None:
    eng = Engine(EnginePolicy(oneshot_quiet_s=600))
    f = {"alertname": "PolicyViolation", "kind": "oneshot", "severity": "warning"}
    alerts, _ = eng.process(finding(0, **f))
    assert alerts[0].kind == "oneshot"
    assert eng.process(finding(500, **f)) == ([], [])  # a repeat: same alert
    assert eng.tick(T0 + 1000) == ([], [])
    alerts, incidents = eng.tick(T0 + 1101)
    assert [a.status for a in alerts] == ["resolved"]
    assert incidents[0].action == "resolved"


def test_stale_condition_resolves_without_findings() -> None:
    eng = Engine(EnginePolicy(stale_after_s=600))
    eng.process(finding(0))
    assert eng.tick(T0 + 599) == ([], [])
    alerts, _ = eng.tick(T0 + 601)
    assert alerts[0].status == "resolved"


def test_flapping_alert_is_held_open_instead_of_paging_again() -> None:
    policy = EnginePolicy(
        resolve_after_s=60, flap_window_s=3600, flap_max_transitions=4, flap_hold_s=900
    )
    eng = Engine(policy)
    fired = 0
    t = 0.0
    # Fire, clear, resolve, fire again... each cycle 10 minutes.
    for _ in range(6):
        alerts, _ = eng.process(finding(t))
        fired += sum(a.status == "firing" for a in alerts)
        eng.process(finding(t + 60, firing=False))
        eng.tick(T0 + t + 200)
        t += 600
    # Two full cycles (4 transitions) then the alert is flapping and stays open.
    assert fired == 3
    state = eng.states[finding(0).fingerprint()]
    assert state.flapping and state.phase == "firing"
    alerts, _ = eng.tick(T0 + t + 1000)  # quiet long enough: resolves, marked flapping
    assert alerts and alerts[0].status == "resolved" and alerts[0].flapping
    assert alerts[0].annotations["flapping"] == "true"


def test_late_clear_does_not_undo_newer_fire() -> None:
    eng = Engine(EnginePolicy(resolve_after_s=0))
    eng.process(finding(100))
    assert eng.process(finding(50, firing=False)) == ([], [])
    assert eng.active()


def test_grouping_and_state_roundtrip() -> None:
    assert (
        group_key({"alertname": "A", "team": "pay"}, ("alertname", "team"))
        == "alertname=A,team=pay"
    )
    # Without a team, the owner (then the agent) keeps unrelated agents apart.
    assert (
        group_key({"alertname": "A", "owner": "ana"}, ("alertname", "team"))
        == "alertname=A,team=ana"
    )
    eng = Engine()
    alerts, _ = eng.process(finding(0, labels={"team": "pay"}))
    assert alerts[0].group_key == "alertname=ErrorSpike,team=pay"
    assert decode_alert(encode_alert(alerts[0])) == alerts[0]
    st = next(iter(eng.states.values()))
    assert AlertState.from_bytes(st.to_bytes()) == st


def test_different_agents_are_different_alerts() -> None:
    eng = Engine()
    a, _ = eng.process(finding(0, agent_id="a"))
    b, _ = eng.process(finding(0, agent_id="b"))
    assert a[0].fingerprint != b[0].fingerprint and a[0].incident_id != b[0].incident_id
    assert len(eng.active()) == 2
