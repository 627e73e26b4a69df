"""Helpers for the command-line tests: run popbatch as a user would, read what it wrote.

``Workspace`` runs ``popbatch`` through click's CliRunner in a folder of its
own, against the session sandbox (real HTTP on 127.0.0.1), with a journal
and a results folder inside that folder. The environment is cleaned of
anything a developer's shell might set (POP_ENDPOINT, POPBATCH_JOURNAL, a
key), so that each test says exactly what the user gave.

The results readers return what a person opening the files would see:
the rows of a sheet or a CSV as dictionaries keyed by the header row.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from openpyxl import load_workbook

from popbatch.cli import main
from popbatch.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"
TEST_DATA = Path(__file__).resolve().parent / "data" / "cli"

# Variables the user's shell might hold; each test sets what it needs.
CLEARED = ("POP_SERVER_KEY", "POP_ENDPOINT", "POPBATCH_JOURNAL")


@dataclass
class Workspace:
    """A folder to run popbatch in, wired to the sandbox."""

    root: Path
    sandbox: SandboxServer

    @property
    def journal(self) -> Path:
        """The journal every run of this workspace uses."""
        return self.root / "journal.sqlite3"

    @property
    def out(self) -> Path:
        """The output folder (``--out``)."""
        return self.root / "out"

    def write(self, name: str, text: str, *, encoding: str = "utf-8") -> Path:
        """Write an input file into the workspace and return its path."""
        path = self.root / name
        path.write_bytes(text.encode(encoding))
        return path

    def common(self) -> list[str]:
        """The options that point a run at the sandbox and the workspace."""
        return [
            "--endpoint",
            self.sandbox.base_url,
            "--journal",
            str(self.journal),
            "--out",
            str(self.out),
            "--rate",
            "0",
            "--concurrency",
            "1",
        ]

    def environ(
        self, key: str | None, extra: Mapping[str, str | None] | None = None
    ) -> dict[str, str | None]:
        """The environment of a run: the key (or none), nothing else of ours."""
        env: dict[str, str | None] = dict.fromkeys(CLEARED)
        env["XDG_STATE_HOME"] = str(self.root / "state")
        if key is not None:
            env["POP_SERVER_KEY"] = key
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str,
        key: str | None = "test",
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
    ) -> Result:
        """Run ``popbatch ARGS`` in-process; ``key`` "test"/"live" picks a sandbox key."""
        chosen = {"test": self.sandbox.test_key, "live": self.sandbox.live_key}.get(
            key or "", key
        )
        return CliRunner().invoke(
            main,
            list(args),
            env=self.environ(chosen, env),
            input=input,
            catch_exceptions=False,
        )

    def operation(self, *args: str, **kwargs: Any) -> Result:
        """Run an operation command with the workspace's common options added."""
        return self.run(*args, *self.common(), **kwargs)

    def subprocess(
        self,
        *args: str,
        key: str | None = "test",
        env: Mapping[str, str | None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m popbatch ARGS`` as a real process, stdin not a terminal."""
        chosen = {"test": self.sandbox.test_key, "live": self.sandbox.live_key}.get(
            key or "", key
        )
        environ = dict(os.environ)
        for name, value in self.environ(chosen, env).items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        return subprocess.run(
            [sys.executable, "-m", "popbatch", *args],
            cwd=self.root,
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def results(self) -> Path:
        """The one results folder under ``out`` (runs with the journal write one each)."""
        folders = sorted(path for path in self.out.iterdir() if path.is_dir())
        assert len(folders) == 1, folders
        return folders[0]

    def mask(self, text: str) -> str:
        """Replace what changes between runs: the sandbox URL, folders, rates."""
        text = text.replace(self.sandbox.base_url, "SANDBOX")
        text = text.replace(str(self.root), "WORK")
        return re.sub(r"\d+\.\d/(s|min)", "N/s", text)


def bodies(sandbox: SandboxServer, endpoint: str) -> list[bytes]:
    """The exact request bodies an endpoint received, in order of arrival."""
    return [request.body for request in sandbox.requests(endpoint=endpoint)]


def sheet(folder: Path, name: str) -> list[dict[str, Any]]:
    """The rows of one sheet of ``results.xlsx``, keyed by its header row."""
    workbook = load_workbook(folder / "results.xlsx", read_only=True)
    try:
        rows = list(workbook[name].iter_rows(values_only=True))
    finally:
        workbook.close()
    header = rows[0]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def sheet_names(folder: Path) -> list[str]:
    """The sheets of ``results.xlsx``, in order."""
    workbook = load_workbook(folder / "results.xlsx", read_only=True)
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def csv_rows(path: Path, encoding: str = "utf-8-sig") -> list[dict[str, str]]:
    """The rows of a CSV file, keyed by its header row."""
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle))


def summary(folder: Path) -> dict[str, Any]:
    """The run's ``summary.json``."""
    data: dict[str, Any] = json.loads((folder / "summary.json").read_text("utf-8"))
    return data


def column(rows: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """One column of rows read by ``sheet`` or ``csv_rows``."""
    return [row[name] for row in rows]
