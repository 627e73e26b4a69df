"""Start popbatch runs fast, and stop them with a signal at a chosen moment.

Run as a script (``python tests/forked_runs.py``), this process imports
popbatch once and then, for every command read from stdin (one JSON object
a line), forks a child that runs the command line (``popbatch.cli.main``)
exactly as ``python -m popbatch`` would, with stdout and stderr in a log
file. Importing popbatch (pandas, pandera) takes about two seconds; a fork
takes milliseconds, so a crash test can start dozens of runs.

A command may ask for a signal: it is sent once the run has logged
``after_outcomes`` row outcomes (with ``-v`` each row outcome is one log
line), plus ``delay_s`` seconds; with ``after_outcomes`` 0 the delay counts
from the start. The child is this process's own, so its pid cannot be
reused before it is waited for: the signal never reaches another process.
For every command one JSON line is written to stdout: the child's pid, its
exit code (negative: the signal that ended it) and whether the signal was
sent before it ended.

This process starts no thread before forking, so each child is a
single-threaded copy of a process that only imported popbatch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_MARKER = b" outcome="


def main() -> None:
    """Serve commands from stdin until it closes."""
    import popbatch.batches
    import popbatch.cli
    import popbatch.pipeline  # noqa: F401  (imported so that children need not)

    for line in sys.stdin:
        command = json.loads(line)
        # Created here, so that the watch finds it from the first moment.
        os.close(os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        pid = os.fork()
        if pid == 0:
            _child(command)
        result = _watch(pid, command)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def _child(command: dict[str, Any]) -> None:
    """Run the command line in this forked child, then leave at once."""
    code = 70
    try:
        log = os.open(command["log"], os.O_WRONLY)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ.update(command.get("env", {}))
        from popbatch.cli import main as popbatch_main

        popbatch_main(args=command["argv"], prog_name="popbatch")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _watch(pid: int, command: dict[str, Any]) -> dict[str, Any]:
    """Wait for the child, sending it the signal asked for at its moment."""
    signum = int(command.get("signal", 0))
    after = int(command.get("after_outcomes", 0))
    delay = float(command.get("delay_s", 0.0))
    started = time.monotonic()
    armed_at = started if after == 0 else None
    seen, offset, tail, sent = 0, 0, b"", False

    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            # A signal sent to a child that had just finished on its own
            # (a zombie not yet reaped) did nothing: the run was not stopped.
            stopped = os.WIFSIGNALED(status) or code in (130, 143)
            return {
                "pid": pid,
                "exit": code,
                "signalled": sent and stopped,
                "outcomes_seen": seen,
            }
        if signum and not sent:
            if armed_at is None and os.stat(command["log"]).st_size > offset:
                with open(command["log"], "rb") as log:
                    log.seek(offset)
                    chunk = log.read()
                offset += len(chunk)
                # A marker cut in two by a read is found in tail + chunk; the
                # tail is shorter than the marker, so nothing counts twice.
                data = tail + chunk
                seen += data.count(_MARKER)
                tail = data[-(len(_MARKER) - 1) :]
                if seen >= after:
                    armed_at = time.monotonic()
            if armed_at is not None and time.monotonic() - armed_at >= delay:
                os.kill(pid, signum)
                sent = True
        # Often enough to stop within a row or two, rarely enough to leave
        # the CPU to the run and the sandbox.
        time.sleep(0.002)


if __name__ == "__main__":
    main()
