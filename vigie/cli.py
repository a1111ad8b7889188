"""The ``vigie`` command. Each subcommand imports its package lazily, so help is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Vigie: remote monitoring of chronic patients (gateways, ingest, alerts, simulators).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
gateway_app = typer.Typer(help="Edge gateway: read devices, keep readings, publish over MQTT.",
                          no_args_is_help=True)
cloud_app = typer.Typer(help="Cloud side: MQTT ingest into InfluxDB, rules, HTTP API.",
                        no_args_is_help=True)
services_app = typer.Typer(help="Start the project's own Mosquitto and InfluxDB.",
                           no_args_is_help=True)
decode_app = typer.Typer(help="Decode device bytes into observations (JSON on stdout).",
                         no_args_is_help=True)
app.add_typer(gateway_app, name="gateway")
app.add_typer(cloud_app, name="cloud")
app.add_typer(services_app, name="services")
app.add_typer(decode_app, name="decode")
pki_app = typer.Typer(help="Secure profile: CA, broker certificate, per-gateway credentials "
                      "(docs/security.md).", no_args_is_help=True)
app.add_typer(pki_app, name="pki")
users_app = typer.Typer(help="API users: create, list, disable (straight in the relational store).",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    from vigie.logs import configure

    configure(verbose)


@gateway_app.command("run")
def gateway_run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Gateway TOML file.",
                                         exists=True, dir_okay=False)],
) -> None:
    """Run a gateway until SIGINT/SIGTERM: sources -> durable outbox -> MQTT."""
    from gateway.daemon import run_from_file

    raise typer.Exit(run_from_file(config))


@cloud_app.command("run")
def cloud_run(
    mqtt: Annotated[str, typer.Option(help="Broker as host:port.")] = "127.0.0.1:1883",
    influx: Annotated[str, typer.Option(help="InfluxDB base URL.")] = "http://127.0.0.1:8086",
    database: Annotated[str, typer.Option(
        help="InfluxDB database (1.x) or bucket (2.x).")] = "vigie",
    influx_token: Annotated[str | None, typer.Option(envvar="VIGIE_INFLUX_TOKEN",
                                                      help="Token for InfluxDB 2.x/3.x.")] = None,
    influx_org: Annotated[str, typer.Option(help="Organisation for InfluxDB 2.x.")] = "vigie",
    db_url: Annotated[str, typer.Option(help="SQLAlchemy URL of the relational state.")] =
        "sqlite:///vigie-cloud.sqlite3",
    api_host: Annotated[str, typer.Option(help="HTTP API bind address.")] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(help="HTTP API port (0: no API).")] = 8000,
    client_id: Annotated[str, typer.Option(help="MQTT client id of this ingest worker "
                                           "(stable: it names the persistent session).")] =
        "vigie-ingest-1",
    ingest: Annotated[bool, typer.Option(help="Run the MQTT ingest worker.")] = True,
    secret_file: Annotated[str | None, typer.Option(
        help="Token signing secret, created 0600 if absent (default: beside the SQLite "
             "database; VIGIE_API_SECRET overrides).")] = None,
    mqtt_ca: Annotated[Path | None, typer.Option(
        help="Secure profile: CA of the broker (MQTT over TLS).", exists=True,
        dir_okay=False)] = None,
    mqtt_cert: Annotated[Path | None, typer.Option(
        help="Secure profile: this worker's client certificate.", exists=True,
        dir_okay=False)] = None,
    mqtt_key: Annotated[Path | None, typer.Option(
        help="Secure profile: this worker's private key.", exists=True, dir_okay=False)] = None,
    rules: Annotated[Path | None, typer.Option(
        help="Rule thresholds and per-patient settings (TOML or JSON, as for 'vigie replay').",
        exists=True, dir_okay=False)] = None,
    share_group: Annotated[str | None, typer.Option(
        help="Consume through an MQTT 5 shared subscription of this group (scale-out).")] = None,
    notify: Annotated[Path | None, typer.Option(
        help="Notification routing (TOML or JSON, see alerting/notify/config.py): webhook, "
             "e-mail and nurse console per site and severity; absent: no notifications.",
        exists=True, dir_okay=False)] = None,
    role: Annotated[str, typer.Option(
        help="Scale-out (docs/scaling.md). 'all': one worker does everything (default). "
             "'intake': shared subscription (--share-group, default vigie-intake), validate, "
             "record gaps and status, route each reading to its patient's shard; give each "
             "intake worker its own --client-id. 'shard': own the shards of --owns: write "
             "InfluxDB, run the rules, raise the alerts of those patients; every shard must "
             "have exactly one shard worker.")] = "all",
    shards: Annotated[int, typer.Option(
        help="Number of patient shards (intake and shard workers must agree).")] = 16,
    owns: Annotated[str | None, typer.Option(
        help="Shards this shard worker owns, e.g. 0-7 or 0-3,8-11 (default: all). The "
             "session is named after them unless --client-id is given.")] = None,
    day_zone: Annotated[str, typer.Option(
        help="IANA time zone of the daily summaries (the patient page's time in range and "
             "weight baseline, the rules' 14-day time-in-range alert): a day runs from "
             "local midnight to local midnight there, e.g. "
             "Indian/Reunion, America/Martinique, America/Cayenne, Indian/Mayotte.")] =
        "Europe/Paris",
    ready_max_lag: Annotated[float, typer.Option(
        metavar="SECONDS", min=1.0,
        help="GET /ready answers 503 when the oldest MQTT message received and not yet "
             "acknowledged is older than this.")] = 30.0,
) -> None:
    """Run ingest (MQTT -> InfluxDB -> rules) and the HTTP API in one process.

    With --role intake or shard, the ingest is split across processes (docs/scaling.md).
    """
    from cloud_api.app import CloudSettings, run_cloud
    from cloud_api.series import day_zone as check_zone

    try:
        check_zone(day_zone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--day-zone") from exc
    if mqtt_ca is None and (mqtt_cert or mqtt_key):
        raise typer.BadParameter("--mqtt-cert/--mqtt-key need --mqtt-ca")
    if role not in ("all", "intake", "shard"):
        raise typer.BadParameter(f"--role must be all, intake or shard, not {role!r}")
    if owns is not None and role != "shard":
        raise typer.BadParameter("--owns is for --role shard")
    settings = CloudSettings(
        mqtt=mqtt, influx_url=influx, influx_db=database, influx_token=influx_token,
        influx_org=influx_org, db_url=db_url, api_host=api_host, api_port=api_port,
        client_id=client_id, ingest=ingest, secret_file=secret_file,
        mqtt_ca=None if mqtt_ca is None else str(mqtt_ca),
        mqtt_cert=None if mqtt_cert is None else str(mqtt_cert),
        mqtt_key=None if mqtt_key is None else str(mqtt_key),
        rules_file=None if rules is None else str(rules), share_group=share_group,
        notify_file=None if notify is None else str(notify),
        role=role, shards=shards, owns=owns, day_zone=day_zone, ready_max_lag_s=ready_max_lag)
    raise typer.Exit(run_cloud(settings))


@services_app.command("up")
def services_up(
    run_dir: Annotated[Path | None, typer.Option(help="Directory for data and logs "
                                                 "(default: a new temporary one).")] = None,
) -> None:
    """Start Mosquitto and InfluxDB on free loopback ports; print them; stop on Ctrl-C."""
    from vigie.services import services_up as up

    raise typer.Exit(up(run_dir))


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin, physician or nurse.")],
    site: Annotated[list[str] | None, typer.Option(
        help="Care site (repeat for several; created if absent). An admin with none is "
             "global.")] = None,
    password_file: Annotated[Path | None, typer.Option(
        help="File holding the password (default: VIGIE_USER_PASSWORD, else a prompt).",
        exists=True, dir_okay=False)] = None,
    db_url: Annotated[str, typer.Option(help="SQLAlchemy URL of the relational state.")] =
        "sqlite:///vigie-cloud.sqlite3",
) -> None:
    """Create an API user."""
    from cloud_api.cli import users_add_command

    raise typer.Exit(users_add_command(db_url, username, role, site or [], password_file))


@users_app.command("list")
def users_list(
    db_url: Annotated[str, typer.Option(help="SQLAlchemy URL of the relational state.")] =
        "sqlite:///vigie-cloud.sqlite3",
) -> None:
    """List API users (JSON lines: username, role, sites)."""
    from cloud_api.cli import users_list_command

    raise typer.Exit(users_list_command(db_url))


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="Login name.")],
    db_url: Annotated[str, typer.Option(help="SQLAlchemy URL of the relational state.")] =
        "sqlite:///vigie-cloud.sqlite3",
) -> None:
    """Disable a login (someone left the team): logins, tokens and refreshes refused at once."""
    from cloud_api.cli import users_disable_command

    raise typer.Exit(users_disable_command(db_url, username, disable=True))


@users_app.command("enable")
def users_enable(
    username: Annotated[str, typer.Argument(help="Login name.")],
    db_url: Annotated[str, typer.Option(help="SQLAlchemy URL of the relational state.")] =
        "sqlite:///vigie-cloud.sqlite3",
) -> None:
    """Enable a disabled login again (the user logs in anew)."""
    from cloud_api.cli import users_disable_command

    raise typer.Exit(users_disable_command(db_url, username, disable=False))


@app.command("demo")
def demo(
    headless: Annotated[bool, typer.Option(help="No live screen; end with a JSON summary.")] =
        False,
    duration: Annotated[float | None, typer.Option(help="Seconds to run (default: until "
                                                   "Ctrl-C, or 60 s when headless).")] = None,
    gateways: Annotated[int, typer.Option(help="Number of simulated homes/EHPAD gateways.")] = 3,
    patients: Annotated[int, typer.Option(help="Simulated patients per gateway.")] = 4,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 7200.0,
    api_port: Annotated[int, typer.Option(help="HTTP API port (0: pick a free one).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated cohort.")] = 7,
    live_interval: Annotated[float, typer.Option(
        help="Once the simulated history has caught up with now, seconds between two "
             "measurements of each patient.")] = 3.0,
    secure: Annotated[bool, typer.Option(help="Secure profile: MQTT over TLS only, a "
                                         "certificate per gateway, per-gateway ACLs.")] =
        False,
) -> None:
    """Start broker, InfluxDB, cloud and simulated gateways; show readings flowing."""
    from vigie.demo import DemoOptions, run_demo

    opts = DemoOptions(headless=headless, duration=duration, gateways=gateways,
                       patients=patients, speed=speed, api_port=api_port, seed=seed,
                       live_interval_s=live_interval,
                       secure=secure)
    raise typer.Exit(run_demo(opts))


@decode_app.command("ble")
def decode_ble(
    uuid: Annotated[str, typer.Argument(help="Characteristic: 2a18, 0x2A18 or 128-bit form.")],
    hex_value: Annotated[str, typer.Argument(metavar="HEX", help="Characteristic value in hex.")],
) -> None:
    """Decode one Bluetooth SIG characteristic value."""
    from device_drivers.ble.cli import decode_ble_command

    raise typer.Exit(decode_ble_command(uuid, hex_value))


@decode_app.command("astm")
def decode_astm(
    file: Annotated[str, typer.Argument(help="Capture of the serial line or bare records; "
                                        "'-' for stdin.")],
) -> None:
    """Decode an ASTM E1381/E1394 capture."""
    from device_drivers.astm.cli import decode_astm_command

    raise typer.Exit(decode_astm_command(file))


@app.command("replay")
def replay(
    file: Annotated[Path, typer.Argument(help="JSON lines: patient, kind, value, unit, time.",
                                         exists=True, dir_okay=False)],
    rules: Annotated[Path | None, typer.Option(help="TOML/JSON thresholds and per-patient "
                                               "settings.")] = None,
) -> None:
    """Replay a reading stream through the rule engine; print alerts as JSON lines."""
    from alerting.cli import replay_command

    raise typer.Exit(replay_command(file, rules))


@pki_app.command("init")
def pki_init(
    directory: Annotated[Path, typer.Argument(help="New PKI directory.", file_okay=False)],
    host: Annotated[list[str] | None, typer.Option(
        help="Extra broker host name or address (repeatable); loopback is always in.")] = None,
) -> None:
    """Create the CA, the broker certificate, the CRL and the first ingest credential."""
    from vigie.pki import INGEST_IDENTITY, PkiError, init_pki

    try:
        paths = init_pki(directory, host or ())
    except PkiError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"CA        {paths.ca_cert}  (keep {paths.ca_key.name} offline)")
    typer.echo(f"broker    {paths.broker_cert}")
    typer.echo(f"ingest    {paths.service(INGEST_IDENTITY).cert.parent}")


@pki_app.command("gateway")
def pki_gateway(
    directory: Annotated[Path, typer.Argument(help="PKI directory.", file_okay=False)],
    gateway_id: Annotated[str, typer.Argument(help="Gateway id: the certificate's name.")],
    force: Annotated[bool, typer.Option(help="Replace an existing credential "
                                        "(rotation; the old certificate is kept).")] = False,
) -> None:
    """Issue a gateway's credential (ca.crt, client.crt, client.key) to copy to it."""
    from vigie.pki import PkiError, issue_gateway, load_pki

    try:
        cred = issue_gateway(load_pki(directory), gateway_id, force=force)
    except PkiError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(str(cred.cert.parent))


@pki_app.command("service")
def pki_service(
    directory: Annotated[Path, typer.Argument(help="PKI directory.", file_okay=False)],
    name: Annotated[str, typer.Argument(help="Service identity, e.g. vigie-ingest-2.")],
    force: Annotated[bool, typer.Option(help="Replace an existing credential.")] = False,
) -> None:
    """Issue one more ingest worker's credential (restart the broker to let it in)."""
    from vigie.pki import PkiError, issue_service, load_pki

    try:
        cred = issue_service(load_pki(directory), name, force=force)
    except PkiError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(str(cred.cert.parent))


@pki_app.command("revoke")
def pki_revoke(
    directory: Annotated[Path, typer.Argument(help="PKI directory.", file_okay=False)],
    cert: Annotated[Path, typer.Argument(help="Client certificate to revoke.", exists=True,
                                         dir_okay=False)],
) -> None:
    """Add a client certificate to the CRL (the broker reads it when it starts)."""
    from vigie.pki import PkiError, load_pki, revoke

    try:
        serial = revoke(load_pki(directory), cert)
    except PkiError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"revoked serial {serial:x}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
