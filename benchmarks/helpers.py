"""What the benchmark scripts share: the sandbox process, timed commands, the machine.

The sandbox always runs as ``popbatch sandbox`` in a process of its own, as
``scripts/demo.py`` starts it, so that the client being measured and the
server answering it never share a GIL. Commands are timed as whole processes
(start-up and imports included, as a user waits for them), and each child's
own peak memory is read from ``os.wait4``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TEST_KEY = "Test-POP-Server-Key"  # the API text's test key; the sandbox's default
LIBRARIES = ("pandas", "pandera", "requests", "urllib3", "xlsxwriter", "pyarrow")


@dataclass(frozen=True, slots=True)
class Timed:
    """One finished command: wall time, exit code, the child's peak memory."""

    seconds: float
    exit_code: int
    peak_rss_mib: float
    stdout: str
    stderr: str


def run_timed(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Timed:
    """Run ``command`` to the end; its wall time and its own peak RSS.

    The environment is ``child_env()`` unless one is given. ``os.wait4``
    reports the resource use of exactly this child, where ``RUSAGE_CHILDREN``
    would give the largest of every child reaped so far.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        process = subprocess.Popen(
            list(command),
            env=child_env() if env is None else dict(env),
            cwd=cwd,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - began
        # wait4 reaped the child; tell Popen so that it never waits again.
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Timed(
            seconds=seconds,
            exit_code=process.returncode,
            peak_rss_mib=usage.ru_maxrss / 1024,  # kilobytes on Linux
            stdout=out.read().decode("utf-8", errors="replace"),
            stderr=err.read().decode("utf-8", errors="replace"),
        )


def child_env() -> dict[str, str]:
    """The environment for a child: this checkout's popbatch first on the path.

    The shared virtual environment may have popbatch installed in editable
    mode from another checkout; the benchmarks measure the code beside them.
    """
    paths = [
        str(ROOT),
        *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
    ]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def popbatch_env() -> dict[str, str]:
    """The environment for a popbatch child: the test key, no inherited settings."""
    env = dict(child_env(), POP_SERVER_KEY=TEST_KEY)
    for name in ("POP_ENDPOINT", "POPBATCH_JOURNAL"):
        env.pop(name, None)
    return env


class Sandbox:
    """A ``popbatch sandbox`` process on a free loopback port.

    Use it as a context manager; ``reset()`` puts the ledger back to the
    seed and forgets what was received, so each measured run starts alike.
    """

    def __init__(self, seed: Path, *, latency_s: float = 0.0) -> None:
        self.seed = seed
        self.latency_s = latency_s
        self._folder = Path(tempfile.mkdtemp(prefix="popbatch-bench-sandbox-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> Sandbox:
        port_file = self._folder / "port"
        command = [PYTHON, "-m", "popbatch", "sandbox", "--port", "0"]
        command += ["--port-file", str(port_file), "--seed", str(self.seed)]
        if self.latency_s:
            command += ["--latency", str(self.latency_s)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, env=child_env()
        )
        self.port = _wait_for_port(port_file, self._process)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)

    @property
    def base_url(self) -> str:
        """The POP base URL to give popbatch's ``--endpoint``."""
        return f"http://127.0.0.1:{self.port}/pop/v1"

    def reset(self) -> None:
        """Back to the seed: ledger, counters and kept requests."""
        self._admin("reset", method="POST")

    def counters(self) -> dict[str, int]:
        """Requests received and applied since the last reset."""
        data = self._admin("counters")
        return {"received": data["received"], "applied": data["applied"]}

    def arrival_times(self) -> list[float]:
        """When each kept request arrived, in seconds (Unix time), sorted."""
        data = self._admin("requests")
        return sorted(
            datetime.fromisoformat(item["received_at"]).timestamp()
            for item in data["requests"]
        )

    def _admin(self, name: str, *, method: str = "GET") -> dict[str, object]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_sandbox/{name}",
            method=method,
            data=b"{}" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            data: dict[str, object] = json.loads(answer.read())
        return data


def _wait_for_port(port_file: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: the sandbox exited with {process.returncode}")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.05)
    process.terminate()
    raise SystemExit("bench: the sandbox did not start within 60 s")


@contextmanager
def scratch_folder(parent: Path | None, prefix: str) -> Iterator[Path]:
    """A temporary folder under ``parent`` (the system default when None)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def filesystem_of(path: Path) -> str:
    """The type of the file system holding ``path`` (ext4, tmpfs, ...)."""
    resolved = str(path.resolve())
    best, kind = "", "unknown"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1]
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]

    return kind


def journal_times(journal: Path) -> list[tuple[float, float]]:
    """For each row, when the rate limiter let it go and when its request left.

    Both by popbatch's own clock, from its journal: ``first_sent_at`` is
    taken as the limiter returns, before the intent's commit, and each
    outcome's ``sent_at`` just before the request leaves, after it. In
    seconds (Unix time), in row order; empty if the journal's layout is not
    the one this reads.
    """
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
            found = conn.execute(
                "SELECT first_sent_at, json_extract(outcome, '$.sent_at') FROM rows "
                "WHERE outcome IS NOT NULL ORDER BY row"
            ).fetchall()
    except sqlite3.Error:
        return []
    return [
        (
            datetime.fromisoformat(released).timestamp(),
            datetime.fromisoformat(sent).timestamp(),
        )
        for released, sent in found
        if released and sent
    ]


def median(values: Sequence[float]) -> float:
    """The median of the runs' figures."""
    return statistics.median(values)


def machine() -> dict[str, str]:
    """The machine and software the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{_total_ram_gib():.1f} GiB",
        "os": f"{platform.system()} {platform.release()} ({_os_name()})",
        "python": platform.python_version(),
        "libraries": ", ".join(versions),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "tree": "modified"
        if _git("status", "--porcelain", "--", "popbatch")
        else "clean",
    }


def _total_ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def load() -> str:
    """The 1-minute load average, to judge how busy the machine was."""
    return f"{os.getloadavg()[0]:.1f}"
