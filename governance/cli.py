"""Governance commands: ``agents ...``, ``suspend`` / ``resume``, ``report governance``.

The registry file in git is the source of truth: ``agents register/retire`` edit it,
``agents sync`` publishes it (registry topic + ClickHouse history). ``suspend``/``resume`` say
only what they published; whether the agent stopped is the pipeline's verification
(``agents killswitch``).
"""

from __future__ import annotations

import functools
import getpass
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

DEFAULT_REGISTRY = "registry.yaml"


def _registry_path(path: Path | None) -> Path:
    return path or Path(DEFAULT_REGISTRY)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _load(path: Path) -> Any:
    from auditstream.governance.registry import RegistryError, load_registry

    try:
        return load_registry(path)
    except RegistryError as exc:
        raise _fail(str(exc)) from None


def _guard(fn: Callable[..., None]) -> Callable[..., None]:
    """Infrastructure failures (broker, ClickHouse) become one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise _fail(f"{type(exc).__name__}: {exc}", 1) from None

    return wrapper


def _actor(by: str | None) -> str:
    return by or getpass.getuser()


RegistryOpt = typer.Option(
    None,
    "--registry",
    "-r",
    help=f"registry YAML (default ./{DEFAULT_REGISTRY})",
)


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    agents = typer.Typer(
        help="Agent inventory: the registry file and its history.", no_args_is_help=True
    )
    app.add_typer(agents, name="agents")

    @agents.command("register")
    def register_cmd(
        file: Path = typer.Argument(..., help="YAML with one agent, a list, or a registry"),
        registry: Path | None = RegistryOpt,
    ) -> None:
        """Validate agent entries from FILE and add/replace them in the registry file."""
        from auditstream.governance.registry import (
            Registry,
            RegistryError,
            dump_registry,
            merge_entries,
            parse_registry,
        )

        target = _registry_path(registry)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise _fail(f"{file}: {exc.strerror}") from None
        try:
            new = parse_registry(text, str(file))
        except RegistryError as exc:
            raise _fail(str(exc)) from None
        current = _load(target) if target.exists() else Registry(agents={}, source=str(target))
        merged, replaced = merge_entries(current, list(new))
        target.write_text(dump_registry(merged), encoding="utf-8")
        for entry in new:
            verb = "updated" if entry.id in replaced else "registered"
            typer.echo(f"{verb} {entry.id} (tier {entry.risk_tier}, {entry.autonomy}) in {target}")
        typer.echo("publish with: auditstream agents sync " + str(target))

    @agents.command("list")
    def list_cmd(
        registry: Path | None = RegistryOpt,
        json_out: bool = typer.Option(False, "--json", help="one JSON object per agent"),
    ) -> None:
        """List the agents of the registry file with their derived tier and policy status."""
        reg = _load(_registry_path(registry))
        for a in reg:
            row = {
                "id": a.id,
                "name": a.name,
                "status": a.status,
                "tier": a.risk_tier,
                "autonomy": a.autonomy,
                "owner": a.owners.accountable or "",
                "approval": a.approval_status,
                "policy_aligned": a.policy_aligned,
            }
            if json_out:
                typer.echo(json.dumps(row))
            else:
                typer.echo(
                    f"{a.id:<24} {a.status:<8} {a.risk_tier:<7} {a.autonomy:<13} "
                    f"{a.approval_status:<9} {a.owners.accountable or '(no owner)'}"
                )

    @agents.command("show")
    @_guard
    def show_cmd(
        agent_id: str,
        registry: Path | None = RegistryOpt,
        history: bool = typer.Option(False, "--history", help="change history from ClickHouse"),
    ) -> None:
        """Show one agent: its entry, derived tier and the controls that tier requires."""
        import yaml

        reg = _load(_registry_path(registry))
        entry = reg.get(agent_id)
        if entry is None:
            raise _fail(f"agent {agent_id!r} is not in {reg.source}", 1)
        policy = entry.policy
        typer.echo(yaml.safe_dump(entry.to_dict(), sort_keys=False).rstrip())
        typer.echo(
            f"# risk tier: {entry.risk_tier}"
            + (" (override)" if entry.tier_override else " (rubric)")
        )
        typer.echo(f"# review required for: {', '.join(sorted(policy.review_required)) or '-'}")
        typer.echo(
            f"# rate limit: {policy.actions_per_minute}/min; auto-suspend on critical: "
            f"{policy.auto_suspend_on_critical}"
        )
        typer.echo(
            f"# missing controls: {', '.join(entry.missing_controls()) or 'none'}; "
            f"policy-aligned: {entry.policy_aligned}"
        )
        if history:
            from auditstream.governance.store import history as load_history
            from auditstream.settings import Settings
            from auditstream.stream.clickhouse import get_client

            client = get_client(Settings.from_env())
            try:
                for h in load_history(client, agent_id):
                    typer.echo(
                        f"{h['changed_at']:%Y-%m-%d %H:%M:%S} {h['change']:<10} by "
                        f"{h['changed_by']}: {', '.join(h['changed_fields'])}"
                    )
            finally:
                client.close()

    @agents.command("retire")
    def retire_cmd(
        agent_id: str,
        by: str = typer.Option(..., "--by", help="who retires it"),
        reason: str = typer.Option(..., "--reason", help="why"),
        registry: Path | None = RegistryOpt,
    ) -> None:
        """Mark an agent retired in the registry file (kept for history, not deleted)."""
        from auditstream.governance.registry import dump_registry, retire_entry

        target = _registry_path(registry)
        reg = _load(target)
        try:
            reg = retire_entry(
                reg,
                agent_id,
                by=by,
                reason=reason,
                at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        except (KeyError, ValueError) as exc:
            raise _fail(str(exc).strip("'\"")) from None
        target.write_text(dump_registry(reg), encoding="utf-8")
        typer.echo(
            f"retired {agent_id} in {target}; publish with: auditstream agents sync {target}"
        )

    @agents.command("sync")
    @_guard
    def sync_cmd(
        registry: Path | None = typer.Argument(None, help="registry YAML"),
        by: str | None = typer.Option(None, "--by", help="actor recorded in the history"),
        prune: bool = typer.Option(True, help="retire agents that are no longer in the file"),
        dry_run: bool = typer.Option(False, "--dry-run", help="show the changes only"),
    ) -> None:
        """Publish the registry file: compacted registry topic + ClickHouse history."""
        from auditstream.governance.store import (
            current_from_clickhouse,
            insert_records,
            plan_sync,
            publish_records,
        )
        from auditstream.settings import Settings
        from auditstream.stream.clickhouse import get_client

        path = _registry_path(registry)
        reg = _load(path)
        settings = Settings.from_env()
        client = get_client(settings)
        try:
            plan = plan_sync(
                reg, current_from_clickhouse(client), by=_actor(by), source=str(path), prune=prune
            )
            for r in plan.records:
                typer.echo(f"{r.change:<10} {r.entry.id}: {', '.join(r.changed_fields)}")
            if dry_run:
                typer.echo(f"dry run: {len(plan.records)} change(s) not published")
                return
            # Topic first: a failure there leaves ClickHouse untouched, so a re-run redoes both.
            publish_records(settings, plan.records)
            insert_records(client, plan.records)
        finally:
            client.close()
        typer.echo(
            f"synced {len(plan.records)} change(s), {len(plan.unchanged)} unchanged "
            f"→ {settings.topics.registry} and agent_registry"
        )

    @agents.command("demo")
    @_guard
    def demo_cmd(
        registry: Path | None = typer.Option(
            None, "--registry", "-r", help="default: the shipped demo registry"
        ),
    ) -> None:
        """Sync the demo registry and produce governance demo traffic (compliant + violations)."""
        from auditstream.governance.demo import run_governance_demo
        from auditstream.producers.client import AuditClient
        from auditstream.settings import Settings

        settings = Settings.from_env()
        if registry is not None:
            _load(registry)  # a precise error before anything is published
        with AuditClient(settings) as audit:
            for line in run_governance_demo(settings, audit, registry):
                typer.echo(line)

    @agents.command("killswitch")
    @_guard
    def killswitch_cmd(agent_id: str | None = typer.Argument(None)) -> None:
        """Kill-switch verification as the pipeline recorded it (the only proof of a stop)."""
        from auditstream.governance.store import kill_switch_status
        from auditstream.settings import Settings
        from auditstream.stream.clickhouse import get_client

        client = get_client(Settings.from_env())
        try:
            rows = kill_switch_status(client, agent_id)
        finally:
            client.close()
        if not rows:
            typer.echo("no kill-switch commands observed by the pipeline")
        for r in rows:
            typer.echo(
                f"{r['at']:%Y-%m-%d %H:%M:%S} {r['agent_id']} {r['command_id']} "
                f"{r['status']}: {r['detail']}"
            )

    def _command(state: str, agent_id: str, by: str, reason: str) -> None:
        from auditstream.governance.store import publish_command
        from auditstream.producers.killswitch import new_command
        from auditstream.settings import Settings

        try:
            cmd = new_command(agent_id, state, by=by, reason=reason)  # type: ignore[arg-type]
        except ValueError as exc:
            raise _fail(str(exc)) from None
        settings = Settings.from_env()
        try:
            partition, offset = publish_command(settings, cmd)
        except Exception as exc:
            raise _fail(f"{state} command NOT published: {exc}", 1) from None
        verb = "suspend" if state == "suspended" else "resume"
        typer.echo(
            f"published {verb} command {cmd.command_id} for agent {agent_id} by {cmd.by} "
            f"({settings.topics.control} partition {partition} offset {offset})."
        )
        typer.echo(
            "This is a request, not a confirmation: the agent is stopped only once the "
            "pipeline sees its SDK acknowledge and no action after it "
            f"(auditstream agents killswitch {agent_id})."
        )

    @app.command("suspend")
    def suspend_cmd(
        agent_id: str,
        by: str = typer.Option(..., "--by", help="who suspends it (recorded)"),
        reason: str = typer.Option(..., "--reason", help="why (recorded)"),
    ) -> None:
        """Publish a suspend command for AGENT on the compacted control topic."""
        _command("suspended", agent_id, by, reason)

    @app.command("resume")
    def resume_cmd(
        agent_id: str,
        by: str = typer.Option(..., "--by", help="who resumes it (recorded)"),
        reason: str = typer.Option(..., "--reason", help="why (recorded)"),
    ) -> None:
        """Publish a resume command for AGENT on the compacted control topic."""
        _command("resumed", agent_id, by, reason)

    @groups["bench"].command("governance")
    def bench_cmd(
        events: int = typer.Option(200_000, help="workload events to evaluate"),
        seed: int = typer.Option(1),
    ) -> None:
        """Policy-rule throughput (pure engine, demo registry, demo workload) in events/s."""
        import time
        from collections import Counter

        import auditstream.governance as gov
        from auditstream.governance.registry import load_registry
        from auditstream.governance.rules import PolicyEngine
        from auditstream.producers.workload import events as workload_events

        reg = load_registry(Path(gov.__file__).parent / "demo_registry.yaml")
        evs = workload_events(events, seed)
        engine = PolicyEngine()
        now = datetime.now(UTC)
        fired: Counter[str] = Counter()
        start = time.perf_counter()
        for ev in evs:
            for v in engine.on_event(ev, reg.get(ev.subject or ""), now):
                fired[v.rule] += 1
        elapsed = time.perf_counter() - start
        typer.echo(
            f"{len(evs)} events in {elapsed:.3f}s = {len(evs) / elapsed:,.0f} events/s "
            f"({elapsed / len(evs) * 1e6:.2f} µs/event); fired: {dict(fired)}"
        )

    @groups["report"].command("governance")
    @_guard
    def report_cmd(
        json_out: bool = typer.Option(False, "--json", help="end with one JSON line of KPIs"),
        registry: Path | None = typer.Option(
            None, "--registry", "-r", help="compute from this file instead of ClickHouse"
        ),
    ) -> None:
        """The governance maturity matrix (owner, policy, DPIA coverage, MTTA/MTTR, gaps)."""
        from auditstream.governance.report import compute_kpis, kpis_from_clickhouse, render_text

        if registry is not None:
            kpis = compute_kpis(_load(registry))
        else:
            from auditstream.settings import Settings
            from auditstream.stream.clickhouse import get_client

            client = get_client(Settings.from_env())
            try:
                kpis = kpis_from_clickhouse(client)
            finally:
                client.close()
        typer.echo(render_text(kpis))
        if json_out:
            typer.echo(json.dumps(kpis.values(), sort_keys=True))
