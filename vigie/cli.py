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
) -> None:
    """Run ingest (MQTT -> InfluxDB -> rules) and the HTTP API in one process."""
    from cloud_api.app import CloudSettings, run_cloud

    settings = CloudSettings(
        mqtt=mqtt, influx_url=influx, influx_db=database, influx_token=influx_token,
        influx_org=influx_org, db_url=db_url, api_host=api_host, api_port=api_port,
        client_id=client_id, ingest=ingest)
    raise typer.Exit(run_cloud(settings))


@services_app.command("up")
def services_up(
    run_dir: Annotated[Path | None, typer.Option(help="Directory for data and logs "
                                                 "(default: a new temporary one).")] = None,
) -> None:
    """Start Mosquitto and InfluxDB on free loopback ports; print them; stop on Ctrl-C."""
    from vigie.services import services_up as up

    raise typer.Exit(up(run_dir))


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
) -> None:
    """Start broker, InfluxDB, cloud and simulated gateways; show readings flowing."""
    from vigie.demo import DemoOptions, run_demo

    opts = DemoOptions(headless=headless, duration=duration, gateways=gateways,
                       patients=patients, speed=speed, api_port=api_port, seed=seed)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
