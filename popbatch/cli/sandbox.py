"""``popbatch sandbox``: the local POP simulator on loopback, for tests and demos.

The command only turns its options into a ``popbatch.sandbox.SandboxConfig``
and serves until SIGINT or SIGTERM; what the simulator does is the sandbox
package's (issue 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from popbatch.cli.options import F, FiniteFloatRange, logging_options
from popbatch.cli.output import setup_logging

# Command-line rate option -> popbatch.sandbox.Faults field.
_SANDBOX_RATES = {
    "fault_429": ("too_many_requests", "HTTP 429 with Retry-After; not applied."),
    "fault_503": ("unavailable", "HTTP 503 with Retry-After; not applied."),
    "fault_200_html": (
        "maintenance_html",
        "HTTP 200 with an HTML maintenance page; not applied.",
    ),
    "fault_close_before": (
        "close_before_apply",
        "Read the request, close without answering; not applied.",
    ),
    "fault_ra01": ("ra01", "RA01 without m_status (not processed)."),
    "fault_rd01": ("rd01", "RD01 without m_status (not processed)."),
    "fault_rm01": ("rm01", "RM01 without m_status (not processed)."),
    "fault_502_html": (
        "bad_gateway_html",
        "Apply, then answer HTTP 502 with an HTML page.",
    ),
    "fault_truncate": (
        "truncated_body",
        "Apply, then send half of the answer's body and close.",
    ),
    "fault_close_after": ("close_after_apply", "Apply, then close without answering."),
    "fault_hang": ("hang", "Apply, then never answer (until the client gives up)."),
}


def _sandbox_options(function: F) -> F:
    """The options of ``popbatch sandbox``: where, what, and which faults."""
    rate = FiniteFloatRange(0.0, 1.0)
    seconds = FiniteFloatRange(min=0.0)
    file = click.Path(dir_okay=False, path_type=Path)
    options = [
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Address to listen on.",
        ),
        click.option(
            "--port",
            default=8080,
            show_default=True,
            type=click.IntRange(0, 65535),
            help="Port (0 picks a free one).",
        ),
        click.option(
            "--port-file",
            type=file,
            help="Write the port here once listening (removed on exit).",
        ),
        click.option(
            "--base-path",
            default="/pop/v1",
            show_default=True,
            help="Path the endpoints live under.",
        ),
        click.option(
            "--seed",
            "seed_file",
            type=file,
            help="Seed the ledger from this JSON file instead of the shipped seed.",
        ),
        click.option(
            "--script",
            "script_file",
            type=file,
            help="Scripted answers per order id (stub.json format).",
        ),
        click.option(
            "--key",
            "keys",
            multiple=True,
            metavar="KEY",
            help="Test merchant key, must send dummy true (repeatable)  "
            "[default: Test-POP-Server-Key]",
        ),
        click.option(
            "--live-key",
            "live_keys",
            multiple=True,
            metavar="KEY",
            help="Live merchant key, may send dummy false (repeatable).",
        ),
        click.option(
            "--error-status",
            type=click.Choice(["http", "always-200"]),
            default="http",
            show_default=True,
            help="HTTP status of RCxx answers: 400/401/403/405/415, or always 200.",
        ),
        click.option(
            "--reauthorize-order-id",
            type=click.Choice(["original", "new"]),
            default="original",
            show_default=True,
            help="Which order id reauthorize answers carry.",
        ),
        click.option("--access-log", is_flag=True, help="Log every request on stderr."),
        click.option(
            "--latency",
            default=0.0,
            type=seconds,
            help="Delay every answer by SECONDS.",
        ),
        click.option(
            "--latency-max",
            default=None,
            type=seconds,
            help="With --latency: a random delay between the two.",
        ),
        click.option(
            "--latency-rate",
            default=1.0,
            type=rate,
            help="Share of requests that get the latency.",
        ),
        *(
            click.option(
                f"--{name.replace('_', '-')}",
                name,
                default=0.0,
                type=rate,
                metavar="RATE",
                help=text,
            )
            for name, (_, text) in _SANDBOX_RATES.items()
        ),
        click.option(
            "--retry-after",
            default=1,
            type=click.IntRange(min=0),
            show_default=True,
            help="Retry-After seconds for 429 and 503.",
        ),
        click.option(
            "--retry-after-style",
            type=click.Choice(["seconds", "http-date", "none"]),
            default="seconds",
            show_default=True,
            help="Retry-After as seconds, an HTTP date, or left out.",
        ),
        click.option(
            "--not-processed-status",
            default=200,
            type=click.IntRange(200, 599),
            show_default=True,
            help="HTTP status of the RA01/RD01/RM01 faults.",
        ),
        click.option(
            "--hang-limit",
            default=600.0,
            type=FiniteFloatRange(min=0.1),
            show_default=True,
            help="Seconds a hung connection is held at most.",
        ),
        click.option(
            "--seed-random",
            default=None,
            type=int,
            metavar="N",
            help="Seed the fault draws, so that a run is repeatable.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command()
@_sandbox_options
@logging_options
def sandbox(verbose: int, quiet: bool, log_file: Path | None, **options: Any) -> None:
    """Serve a local POP simulator on loopback, for tests and demos.

    It prints "listening on http://HOST:PORT/pop/v1" and runs until SIGINT
    or SIGTERM. Each fault rate is a probability per request (together at
    most 1). The README's Sandbox section describes the seed and script
    formats and every behaviour the API text leaves open.
    """
    from popbatch import sandbox as pop_sandbox

    setup_logging(max(verbose, 1 if options["access_log"] else 0), quiet, log_file)
    faults = pop_sandbox.Faults(
        latency_s=options["latency"],
        latency_max_s=options["latency_max"],
        latency_rate=options["latency_rate"],
        retry_after_s=options["retry_after"],
        retry_after_style=pop_sandbox.RetryAfterStyle(options["retry_after_style"]),
        not_processed_status=options["not_processed_status"],
        hang_limit_s=options["hang_limit"],
        seed=options["seed_random"],
        **{field: options[name] for name, (field, _) in _SANDBOX_RATES.items()},
    )
    seed_file, script_file = options["seed_file"], options["script_file"]
    config = pop_sandbox.SandboxConfig(
        host=options["host"],
        port=options["port"],
        base_path=options["base_path"],
        test_keys=options["keys"] or (pop_sandbox.DEFAULT_TEST_KEY,),
        live_keys=options["live_keys"],
        seed=None if seed_file is None else pop_sandbox.load_seed_file(seed_file),
        script=None
        if script_file is None
        else pop_sandbox.load_script_file(script_file),
        faults=faults,
        error_status=pop_sandbox.ErrorStatus(options["error_status"]),
        reauthorize_echo=pop_sandbox.ReauthorizeEcho(options["reauthorize_order_id"]),
        access_log=options["access_log"],
    )
    # SandboxError is a PopbatchError: the group prints one line and exits 78.
    pop_sandbox.serve_until_signalled(
        config, announce=click.echo, port_file=options["port_file"]
    )


COMMANDS = (sandbox,)
