"""SandboxServer: a local POP simulator to start, drive, inspect and stop.

    with SandboxServer(SandboxConfig(port=0)).start() as sandbox:
        sandbox.add_order("A-1", 1000)
        requests.post(sandbox.url("card-capture"), ...)
        assert sandbox.applied("A-1") == 1

Everything a test needs is a method here: seed the ledger, set faults,
script answers, read counters and the exact requests received, and reset
to the state the server started in.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from popbatch.sandbox.codes import ENDPOINTS
from popbatch.sandbox.config import ADMIN_PREFIX, SandboxConfig
from popbatch.sandbox.errors import SandboxError
from popbatch.sandbox.faults import Draw, FaultDrawer, Faults
from popbatch.sandbox.handler import HTTPServer, new_socket_family
from popbatch.sandbox.ledger import Ledger, OrderView
from popbatch.sandbox.pop import PopApplication
from popbatch.sandbox.recorder import ReceivedRequest, Recorder
from popbatch.sandbox.script import Script, ScriptBook, ScriptedAnswer, load_script_file
from popbatch.sandbox.seed import Seed, load_seed_file


class SandboxServer:
    """A POP sandbox on one port; thread-safe, and reusable across tests."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.ledger = Ledger(self.config.initial_seed())
        self.recorder = Recorder(keep=self.config.keep_requests)
        self._script = ScriptBook(self.config.script)
        self._faults = self.config.faults
        self._drawer = FaultDrawer()
        self._release = threading.Event()
        self.application = PopApplication(
            config=self.config, ledger=self.ledger, script=self._script
        )
        self._paths = {f"{self.config.base_path}/{name}": name for name in ENDPOINTS}

        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # -- life cycle ---------------------------------------------------------

    def start(self) -> SandboxServer:
        """Listen and serve in a background thread; returns self.

        Raises:
            SandboxError: the address cannot be used (port in use, bad host).
        """
        host, port = self.config.host, self.config.port
        try:
            self._httpd = HTTPServer((host, port), self, new_socket_family(host))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SandboxError(
                    f"cannot listen on {host}:{port}: the port is in use; "
                    "choose another --port, or --port 0 for a free one"
                ) from None
            raise SandboxError(
                f"cannot listen on {host}:{port}: {error.strerror or error}"
            ) from None

        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"popbatch-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release held connections and close every socket."""
        self._release.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> SandboxServer:
        return self if self._httpd is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- where it listens ---------------------------------------------------

    @property
    def host(self) -> str:
        """The address it listens on."""
        return self.config.host

    @property
    def port(self) -> int:
        """The port it listens on (the real one when started on port 0)."""
        if self._httpd is None:
            raise SandboxError("the sandbox is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The POP endpoint base, e.g. ``http://127.0.0.1:PORT/pop/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.config.base_path}"

    def url(self, endpoint: str) -> str:
        """The URL of one endpoint, e.g. ``url("card-capture")``."""
        return f"{self.base_url}/{endpoint}"

    @property
    def admin_url(self) -> str:
        """The base of the admin endpoints, e.g. ``http://127.0.0.1:PORT/_sandbox``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{ADMIN_PREFIX}"

    @property
    def test_key(self) -> str | None:
        """The first test merchant key (dummy must be true), if any."""
        return self.config.test_keys[0] if self.config.test_keys else None

    @property
    def live_key(self) -> str | None:
        """The first live merchant key (dummy false allowed), if any."""
        return self.config.live_keys[0] if self.config.live_keys else None

    def authorization(self, key: str | None = None) -> str:
        """The ``Authorization`` header value for ``key`` (default: the test key)."""
        chosen = key if key is not None else self.test_key or self.live_key or ""
        return "Basic " + base64.b64encode(f"{chosen}:".encode()).decode("ascii")

    # -- the ledger ---------------------------------------------------------

    def load_seed(self, seed: Seed | Mapping[str, Any] | Path) -> None:
        """Add a seed's orders and accounts (replacing those with the same id)."""
        if isinstance(seed, Path):
            seed = load_seed_file(seed)
        elif not isinstance(seed, Seed):
            seed = Seed.from_mapping(seed)
        self.ledger.load(seed)

    def add_order(
        self,
        order_id: str,
        amount: int,
        *,
        state: str = "authorised",
        captured: int | None = None,
        refunded: int = 0,
        decline: bool | Mapping[str, str] = False,
        card: Mapping[str, Any] | None = None,
    ) -> None:
        """Add one order, checked like a seed entry (see the seed format)."""
        entry: dict[str, Any] = {"order_id": order_id, "amount": amount, "state": state}
        if captured is not None:
            entry["captured"] = captured
        if refunded:
            entry["refunded"] = refunded
        if decline:
            entry["decline"] = decline if isinstance(decline, bool) else dict(decline)
        if card is not None:
            entry["card"] = dict(card)
        self.load_seed({"orders": [entry]})

    def add_account(
        self,
        account_id: str,
        cards: Sequence[Mapping[str, Any]],
        *,
        default_card: str | None = None,
    ) -> None:
        """Add one PayNow account; each card is a mapping with a ``card_id``.

        ``default_card`` names the standard card (the same as ``"default":
        true`` on that card in a seed file).
        """
        entries = [dict(card) for card in cards]
        if default_card is not None:
            marked = [
                entry for entry in entries if entry.get("card_id") == default_card
            ]
            if not marked:
                raise SandboxError(
                    f"default_card {default_card!r} is not one of the cards"
                )
            marked[0]["default"] = True
        self.load_seed(
            {"paynow_accounts": [{"account_id": account_id, "cards": entries}]}
        )

    def order(self, order_id: str) -> OrderView | None:
        """The ledger's view of one order (state, amounts, history), or None."""
        return self.ledger.order(order_id)

    # -- faults and scripts -------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The fault settings in use."""
        return self._faults

    def set_faults(self, faults: Faults | None = None, **settings: Any) -> None:
        """Use new fault settings: a Faults value, or its fields as keywords.

        ``set_faults(too_many_requests=1.0, retry_after_s=2)`` replaces all
        settings (fields not given take their defaults); ``set_faults()``
        turns every fault off.
        """
        if faults is not None and settings:
            raise SandboxError("give a Faults value or keyword settings, not both")
        self._faults = faults if faults is not None else Faults.from_mapping(settings)

    def draw_fault(self, faults: Faults, *, key: str) -> Draw:
        """Draw the fault for one request (used by the HTTP handler)."""
        return self._drawer.draw(faults, key=key)

    def set_script(self, script: Script | Mapping[str, Any] | Path | None) -> None:
        """Replace the script (stub.json format); None removes it."""
        if isinstance(script, Path):
            script = load_script_file(script)
        elif script is not None and not isinstance(script, Script):
            script = Script.from_mapping(script)
        self._script.replace(script)

    def script_order(self, order_id: str, *answers: Mapping[str, Any]) -> None:
        """Queue scripted answers for one order, after any it still has."""
        where = f"script for {order_id!r}"
        checked = tuple(
            ScriptedAnswer.from_mapping(dict(answer), where=f"{where}[{index}]")
            for index, answer in enumerate(answers)
        )
        self._script.add(order_id, checked)

    # -- what was received --------------------------------------------------

    def received(self, order_id: str | None = None, endpoint: str | None = None) -> int:
        """How many requests arrived (for an order id and/or endpoint)."""
        return self.recorder.received(order_id, endpoint)

    def applied(self, order_id: str | None = None, endpoint: str | None = None) -> int:
        """How many requests changed the ledger or got a scripted success."""
        return self.recorder.applied(order_id, endpoint)

    def requests(
        self, order_id: str | None = None, endpoint: str | None = None
    ) -> list[ReceivedRequest]:
        """The requests received, oldest first, with exact body bytes."""
        return self.recorder.requests(order_id, endpoint)

    def counters(self) -> dict[str, Any]:
        """All counters, as the ``/_sandbox/counters`` endpoint returns them."""
        return self.recorder.snapshot()

    # -- reset --------------------------------------------------------------

    def reset(self) -> None:
        """Return to the start: seed ledger, no counts, configured faults and script.

        Connections held by a hang or a delay are let go.
        """
        released, self._release = self._release, threading.Event()
        released.set()
        self.ledger.clear()
        self.ledger.load(self.config.initial_seed())
        self.recorder.clear()
        self._faults = self.config.faults
        self._script.replace(self.config.script)

    # -- for the HTTP handler -----------------------------------------------

    @property
    def release_event(self) -> threading.Event:
        """Set when held connections must be let go (reset or stop)."""
        return self._release

    def endpoint_for(self, path: str) -> str | None:
        """The endpoint name of a POP path, or None."""
        return self._paths.get(path)

    def track(self, connection: socket.socket) -> None:
        """Remember an open connection, so that stop() can close it."""
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._connections_lock:
            self._connections.discard(connection)
