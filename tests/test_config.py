"""Settings: popbatch.toml, the environment, the command line, and the server key.

Precedence for endpoint, rate, concurrency, journal and out is: command
line, then environment (POP_ENDPOINT, POPBATCH_JOURNAL), then the config
file, then the defaults. The key never lives in the config file;
--server-key-file wins over POP_SERVER_KEY.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Popbatch

from popbatch.config import (
    DEFAULT_ENDPOINT,
    DEFAULT_OUT,
    ServerKey,
    Settings,
    load_config_file,
    load_server_key,
    parse_amount_option,
    resolve_settings,
)
from popbatch.errors import ConfigurationError, KeyFileExposedError, UsageError

NOTHING_GIVEN = dict.fromkeys(("endpoint", "rate", "concurrency", "journal", "out"))


def settings(
    tmp_path: Path,
    config: str | None = None,
    *,
    given: dict[str, object] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings with an optional popbatch.toml in tmp_path."""
    if config is not None:
        (tmp_path / "popbatch.toml").write_text(config, encoding="utf-8")
    return resolve_settings(
        {**NOTHING_GIVEN, **(given or {})},
        config=None,
        cwd=tmp_path,
        environ={"XDG_STATE_HOME": str(tmp_path / "state"), **(environ or {})},
    )


# --- resolve_settings: precedence ------------------------------------------------


def test_without_a_config_file_the_defaults_apply(tmp_path):
    """No file, no environment, no options: POP's endpoint, 5/s, 4 workers."""
    found = settings(tmp_path)

    assert found == Settings(
        endpoint=DEFAULT_ENDPOINT,
        rate=5.0,
        concurrency=4,
        journal=tmp_path / "state" / "popbatch" / "journal.sqlite3",
        out=DEFAULT_OUT,
    )


def test_the_config_file_overrides_the_defaults(tmp_path):
    """Every setting the file may hold is taken from it."""
    found = settings(
        tmp_path,
        'endpoint = "http://127.0.0.1:9/pop/v1"\nrate = 2.5\nconcurrency = 2\n'
        'journal = "state/j.sqlite3"\nout = "results"\n',
    )

    assert found == Settings(
        endpoint="http://127.0.0.1:9/pop/v1",
        rate=2.5,
        concurrency=2,
        journal=tmp_path / "state" / "j.sqlite3",
        out=tmp_path / "results",
    )


def test_the_environment_overrides_the_config_file(tmp_path):
    """POP_ENDPOINT and POPBATCH_JOURNAL win over the file."""
    found = settings(
        tmp_path,
        'endpoint = "http://file/pop/v1"\njournal = "file.sqlite3"\n',
        environ={"POP_ENDPOINT": "http://env/pop/v1", "POPBATCH_JOURNAL": "/env/j"},
    )

    assert (found.endpoint, found.journal) == ("http://env/pop/v1", Path("/env/j"))


def test_the_command_line_overrides_the_environment_and_the_file(tmp_path):
    """An option given wins over everything else."""
    found = settings(
        tmp_path,
        'endpoint = "http://file/pop/v1"\nrate = 1\nconcurrency = 2\nout = "f"\n',
        given={
            "endpoint": "http://cli/pop/v1",
            "rate": 9.0,
            "concurrency": 8,
            "journal": Path("/cli/j"),
            "out": Path("/cli/out"),
        },
        environ={"POP_ENDPOINT": "http://env/pop/v1", "POPBATCH_JOURNAL": "/env/j"},
    )

    assert found == Settings(
        endpoint="http://cli/pop/v1",
        rate=9.0,
        concurrency=8,
        journal=Path("/cli/j"),
        out=Path("/cli/out"),
    )


def test_settings_may_sit_in_a_popbatch_table(tmp_path):
    """[popbatch] rate = 3 is the same as rate = 3 at the top."""
    found = settings(tmp_path, "[popbatch]\nrate = 3\n")

    assert found.rate == 3.0


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path):
    """--config /etc/x.toml with out = "results" means /etc/results, wherever cron starts."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "batch.toml").write_text('out = "results"\njournal = "~/j.sqlite3"\n')

    found = resolve_settings(
        NOTHING_GIVEN,
        config=folder / "batch.toml",
        cwd=tmp_path / "elsewhere",
        environ={},
    )

    assert found.out == folder / "results"
    assert found.journal == Path.home() / "j.sqlite3"


# --- the config file: refusals ----------------------------------------------------


@pytest.mark.parametrize(
    "name", ["server_key", "pop_server_key", "key", "api_secret", "password"]
)
def test_a_key_like_setting_is_refused_without_showing_its_value(tmp_path, name):
    """The key never lives in the config file; the message names the setting only."""
    (tmp_path / "popbatch.toml").write_text(f'{name} = "Live-Secret-123"\n')

    with pytest.raises(ConfigurationError) as raised:
        load_config_file(None, tmp_path)

    assert raised.value.message == (
        f"the config file {str(tmp_path / 'popbatch.toml')!r} holds {name!r}: the "
        "server key never goes in the config file"
    )
    assert raised.value.hint == (
        "Remove it; give the key with POP_SERVER_KEY or --server-key-file PATH "
        "(mode 600)."
    )
    assert "Live-Secret-123" not in str(raised.value)


def test_a_key_inside_the_popbatch_table_is_refused_too(tmp_path):
    """[popbatch] server_key = ... is no better."""
    (tmp_path / "popbatch.toml").write_text('[popbatch]\nserver_key = "x"\n')

    with pytest.raises(ConfigurationError, match=r"holds 'popbatch\.server_key'"):
        load_config_file(None, tmp_path)


def test_an_unknown_setting_is_refused_with_the_allowed_names(tmp_path):
    """A typo is not silently ignored."""
    (tmp_path / "popbatch.toml").write_text("concurency = 2\n")

    with pytest.raises(ConfigurationError) as raised:
        load_config_file(None, tmp_path)

    assert raised.value.message == (
        f"the config file {str(tmp_path / 'popbatch.toml')!r} has unknown "
        "settings: concurency"
    )
    assert (
        raised.value.hint == "It may hold: concurrency, endpoint, journal, out, rate."
    )


RATE_RULE = "a number of requests per second, 0 (no limit) or from 0.001 up"


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ('rate = "fast"', RATE_RULE),
        ("rate = -1", RATE_RULE),
        ("rate = inf", RATE_RULE),
        ("rate = nan", RATE_RULE),
        ("rate = 0.0001", RATE_RULE),
        ("concurrency = 0", "a whole number from 1 to 64"),
        ("concurrency = 2.5", "a whole number from 1 to 64"),
        ("concurrency = true", "a whole number from 1 to 64"),
        ("endpoint = 5", 'a URL in quotes, e.g. "https://pay3.veritrans.co.jp/pop/v1"'),
        ("out = 1", "a folder path in quotes"),
        ('journal = ""', "a file path in quotes"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused(tmp_path, line, rule):
    """Each setting's type and range are checked, with the rule in the message."""
    (tmp_path / "popbatch.toml").write_text(line + "\n")
    name, _, value = line.partition(" = ")

    with pytest.raises(ConfigurationError) as raised:
        load_config_file(None, tmp_path)

    shown = {"true": "True"}.get(value, value).replace('"', "'")
    assert raised.value.message == (
        f"the config file {str(tmp_path / 'popbatch.toml')!r} sets {name} = "
        f"{shown}; {name} must be {rule}"
    )


def test_a_file_that_is_not_toml_is_refused(tmp_path):
    """TOML's own message says where."""
    (tmp_path / "popbatch.toml").write_text("rate = \n")

    with pytest.raises(ConfigurationError) as raised:
        load_config_file(None, tmp_path)

    assert raised.value.message == (
        f"cannot read the config file {str(tmp_path / 'popbatch.toml')!r}: "
        "Invalid value (at line 1, column 8)"
    )


def test_a_config_option_naming_no_file_is_bad_usage(tmp_path):
    """--config that points nowhere is a usage error (exit 2)."""
    with pytest.raises(UsageError) as raised:
        load_config_file(tmp_path / "nope.toml", tmp_path)

    assert raised.value.message == (
        f"the config file {str(tmp_path / 'nope.toml')!r} does not exist"
    )


# --- the key -----------------------------------------------------------------------


def test_the_key_file_wins_over_the_environment(tmp_path):
    """--server-key-file is read even when POP_SERVER_KEY is set."""
    path = tmp_path / "pop.key"
    path.write_text("from-the-file\n")
    path.chmod(0o600)

    key = load_server_key(path, {"POP_SERVER_KEY": "from-the-environment"})

    assert key.reveal() == "from-the-file"


def test_a_group_readable_key_file_is_refused(tmp_path):
    """Mode 640 is exposed too (exit 77)."""
    path = tmp_path / "pop.key"
    path.write_text("k\n")
    path.chmod(0o640)

    with pytest.raises(KeyFileExposedError) as raised:
        load_server_key(path, {})

    assert raised.value.hint == f"Run: chmod 600 {path}"


def test_an_empty_key_file_is_refused(tmp_path):
    """A file with only a newline holds no key (exit 78)."""
    path = tmp_path / "pop.key"
    path.write_text("\n")
    path.chmod(0o600)

    with pytest.raises(ConfigurationError, match="is empty"):
        load_server_key(path, {"POP_SERVER_KEY": "ignored"})


def test_the_key_never_shows_in_its_repr():
    """repr and str mask the key."""
    key = ServerKey("Live-Secret-123")

    assert (repr(key), str(key)) == ("ServerKey('********')", "ServerKey('********')")


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("1200000", 1_200_000),
        ("1,200,000", 1_200_000),
        ("0", 0),
        ("￥50,000", 50_000),
        ("¥ 50000", 50_000),
        ("50,000円", 50_000),
        ("１０００", 1000),
        ("1_200_000", 1_200_000),
    ],
)
def test_amount_options_read_whole_yen(text, amount):
    """--max-total and --expect-total read an amount as a file's cell is read."""
    assert parse_amount_option(text, "--max-total") == amount


@pytest.mark.parametrize(
    "text",
    ["1.5", "-5", "1e6", "", "1,0000", "1,2,3", "¥50,000円", "1_0000", "1,000_000"],
)
def test_amount_options_refuse_anything_else(text):
    """Decimals, signs, exponents and commas that group no thousands are refused."""
    with pytest.raises(UsageError):
        parse_amount_option(text, "--max-total")


# --- through the command line -------------------------------------------------------


@pytest.fixture
def ws(ws: Popbatch) -> Popbatch:
    """The workspace, with one authorised order and a file capturing it."""
    ws.sandbox.add_order("A-1", 1000)
    (ws.root / "one.csv").write_text("order_id,amount\nA-1,1000\n")
    return ws


@pytest.mark.sandbox
def test_a_run_takes_its_settings_from_popbatch_toml(ws):
    """endpoint, journal, out and rate from the file in the working folder."""
    (ws.root / "popbatch.toml").write_text(
        f'endpoint = "{ws.sandbox.base_url}"\njournal = "state/journal.sqlite3"\n'
        'out = "from-file"\nrate = 0\n'
    )

    result = ws.invoke("capture", "one.csv", "-q")

    assert (result.exit_code, result.output) == (0, "")
    assert ws.sandbox.applied("A-1") == 1
    assert (ws.root / "state" / "journal.sqlite3").exists()
    assert (ws.root / "from-file" / "one-capture-batch1" / "results.xlsx").exists()


@pytest.mark.sandbox
def test_the_environment_endpoint_wins_over_the_file(ws):
    """POP_ENDPOINT beats a file that names an endpoint nobody listens on."""
    (ws.root / "popbatch.toml").write_text(
        'endpoint = "http://127.0.0.1:9/pop/v1"\nrate = 0\n'
    )

    result = ws.invoke(
        "capture",
        "one.csv",
        "-q",
        "--journal",
        "j.sqlite3",
        env={"POP_ENDPOINT": ws.sandbox.base_url},
    )

    assert (result.exit_code, result.output) == (0, "")
    assert ws.sandbox.applied("A-1") == 1


@pytest.mark.sandbox
def test_the_command_line_wins_over_the_environment(ws):
    """--endpoint and --journal beat POP_ENDPOINT and POPBATCH_JOURNAL."""
    result = ws.invoke(
        "capture",
        "one.csv",
        "-q",
        "--rate",
        "0",
        "--endpoint",
        ws.sandbox.base_url,
        "--journal",
        "cli.sqlite3",
        env={
            "POP_ENDPOINT": "http://127.0.0.1:9/pop/v1",
            "POPBATCH_JOURNAL": str(ws.root / "env.sqlite3"),
        },
    )

    assert (result.exit_code, result.output) == (0, "")
    assert (ws.root / "cli.sqlite3").exists()
    assert not (ws.root / "env.sqlite3").exists()


@pytest.mark.sandbox
def test_the_environment_journal_wins_over_the_file(ws):
    """POPBATCH_JOURNAL beats the file's journal."""
    (ws.root / "popbatch.toml").write_text('journal = "file.sqlite3"\nrate = 0\n')

    result = ws.invoke(
        "capture",
        "one.csv",
        "-q",
        "--endpoint",
        ws.sandbox.base_url,
        env={"POPBATCH_JOURNAL": str(ws.root / "env.sqlite3")},
    )

    assert (result.exit_code, result.output) == (0, "")
    assert (ws.root / "env.sqlite3").exists()
    assert not (ws.root / "file.sqlite3").exists()


def test_a_key_in_the_config_file_stops_the_run_with_78(ws):
    """The run refuses before reading the key or the file."""
    (ws.root / "popbatch.toml").write_text('server_key = "Test-POP-Server-Key"\n')

    result = ws.invoke("capture", "one.csv")

    assert result.exit_code == 78
    assert result.stderr == (
        f"Error: the config file {str(ws.root / 'popbatch.toml')!r} holds "
        "'server_key': the server key never goes in the config file\n"
        "Remove it; give the key with POP_SERVER_KEY or --server-key-file PATH "
        "(mode 600).\n"
    )


def test_a_config_option_naming_no_file_exits_2(ws):
    """--config nope.toml: bad usage."""
    result = ws.invoke("capture", "one.csv", "--config", "nope.toml")

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: the config file 'nope.toml' does not exist\n"
        "Give the path of a popbatch.toml, or leave out --config.\n"
    )


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("http://[::1:/pop/v1", "is not a valid URL (Invalid IPv6 URL)"),
        (
            "http://127.0.0.1:99999/pop/v1",
            "is not a valid URL (Port out of range 0-65535)",
        ),
        ("http://127.0.0.1:0/pop/v1", "names port 0, which no server listens on"),
        ("http://:80/pop/v1", "names no host"),
        ("pay3.veritrans.co.jp/pop/v1", "is not an http:// or https:// URL"),
    ],
)
def test_an_endpoint_that_is_no_usable_url_exits_78_before_the_journal(
    ws, endpoint, problem
):
    """Refused with the configuration's exit code; no journal is created."""
    journal = ws.root / "new.sqlite3"
    result = ws.invoke(
        "capture", "one.csv", "--endpoint", endpoint, "--journal", str(journal)
    )

    assert result.exit_code == 78
    assert result.stderr == (
        f"Error: the endpoint {endpoint!r} {problem}\n"
        "POP's endpoint is https://pay3.veritrans.co.jp/pop/v1 (the operation's "
        "path is added).\n"
    )
    assert not journal.exists()


def test_a_bad_setting_exits_78(ws):
    """A rate that is not a number, named with the file."""
    (ws.root / "popbatch.toml").write_text('rate = "fast"\n')

    result = ws.invoke("capture", "one.csv")

    assert result.exit_code == 78
    assert result.stderr == (
        f"Error: the config file {str(ws.root / 'popbatch.toml')!r} sets rate = "
        "'fast'; rate must be a number of requests per second, 0 (no limit) or "
        "from 0.001 up\n"
    )


@pytest.mark.sandbox
def test_validate_status_and_report_read_the_config_file_too(ws):
    """The file's out and journal apply to every command, not only the runs."""
    (ws.root / "popbatch.toml").write_text(
        f'endpoint = "{ws.sandbox.base_url}"\nrate = 0\nout = "checked"\n'
        'journal = "state/j.sqlite3"\n'
    )
    ws.write("bad.csv", "order_id,amount\nA-1,x\n")

    ran = ws.invoke("capture", "one.csv", "-q")
    validated = ws.invoke("validate", "capture", "bad.csv", "-q")
    status = ws.invoke("status")
    rebuilt = ws.invoke("report", "1")

    assert (ran.exit_code, validated.exit_code, status.exit_code) == (0, 65, 0)
    assert (ws.root / "checked" / "bad-capture-validate" / "rejected.csv").exists()
    assert status.stdout.startswith("batch 1  ")
    assert status.stdout.endswith(
        "  capture test  one.csv  finished exit 0  (Succeeded 1)\n"
    )
    folder = ws.root / "checked" / "one-capture-batch1"
    assert (rebuilt.exit_code, rebuilt.stdout) == (0, f"{folder}\n")
