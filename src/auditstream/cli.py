"""The ``auditstream`` command.

Each area registers its own commands through ``register(app, groups)`` in its ``cli`` module,
so this file only lists the areas. Areas whose dependencies are not installed (the SDK-only
install has no faust or ClickHouse) are skipped, and their commands simply do not appear.
Command modules import heavy libraries inside the command functions to keep start-up fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

app = typer.Typer(
    name="auditstream",
    help="Audit trail and anomaly alerts for autonomous AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Shared command groups that several areas add to (e.g. `bench pipeline`, `bench nab`).
GROUPS: dict[str, typer.Typer] = {
    "bench": typer.Typer(
        help="Benchmarks that print figures (never timed tests).", no_args_is_help=True
    ),
    "report": typer.Typer(help="Reports for analysts and governance.", no_args_is_help=True),
    "db": typer.Typer(help="ClickHouse schema: migrations.", no_args_is_help=True),
}
# (command module, a library it cannot work without): the SDK-only install lacks the latter for
# every area but the producers, and then those commands are not offered at all.
AREAS = (
    ("auditstream.producers.cli", "confluent_kafka"),
    ("auditstream.deploy.cli", "clickhouse_connect"),
    ("auditstream.stream.cli", "faust"),
    ("auditstream.detectors.cli", "numpy"),
    ("auditstream.alerts.cli", "httpx"),
    ("auditstream.governance.cli", "yaml"),
)


def _installed(name: str) -> bool:
    if name in sys.modules:
        # Already imported. (faust replaces its module object by a lazy one without
        # __spec__, and find_spec then raises ValueError.)
        return True
    return importlib.util.find_spec(name) is not None


def _register_areas() -> None:
    for module_name, needs in AREAS:
        if not _installed(needs):
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only a missing *optional dependency* or a not-yet-written area is tolerated.
            if exc.name and (exc.name == module_name or not exc.name.startswith("auditstream")):
                continue
            raise
        module.register(app, GROUPS)
    # A group appears only when some installed area put a command in it.
    for name, group in GROUPS.items():
        if group.registered_commands or group.registered_groups:
            app.add_typer(group, name=name)


_register_areas()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
