"""Run a sandbox in the foreground until SIGINT or SIGTERM (``popbatch sandbox``)."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from popbatch.sandbox.config import SandboxConfig
from popbatch.sandbox.errors import SandboxError
from popbatch.sandbox.server import SandboxServer


def serve_until_signalled(
    config: SandboxConfig,
    *,
    announce: Callable[[str], None],
    port_file: Path | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly and return.

    Once listening, ``announce`` gets the line
    ``listening on http://HOST:PORT/pop/v1`` and ``port_file`` (if given)
    holds the port, so that a script can start the sandbox on port 0 and
    learn where it is. The port file is removed on the way out. Must run in
    the main thread, which is where signal handlers live.

    Raises:
        SandboxError: the sandbox cannot listen or the port file cannot be written.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, on_signal)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    server = SandboxServer(config)
    try:
        server.start()
        if port_file is not None:
            write_port_file(port_file, server.port)
        announce(f"listening on {server.base_url}")
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if port_file is not None:
            port_file.unlink(missing_ok=True)


def write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so that a reader never sees half of it."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "w", encoding="ascii") as file:
            file.write(f"{port}\n")
        os.replace(temporary, path)
    except OSError as error:
        raise SandboxError(
            f"cannot write the port file {str(path)!r}: {error.strerror or error}"
        ) from None
