"""A local POP simulator: the independent referee for tests, demo and benchmarks.

It implements docs/pop-card-api.txt on its own and imports nothing from
popbatch's client, schema, pipeline, io, operations or rows: a rule shared
by both sides would let one bug pass both. Start one with::

    from popbatch.sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0)) as sandbox:
        print(sandbox.base_url)

Modules: ``server`` (SandboxServer, the public face), ``handler`` (HTTP),
``pop`` (request to answer), ``validation`` (field rules), ``ledger``
(orders, PayNow accounts), ``seed`` (seed files), ``script`` (scripted
answers), ``faults`` (fault injection), ``recorder`` (counters),
``admin`` (``/_sandbox`` endpoints), ``runner`` (foreground serving).
"""

from popbatch.sandbox.config import (
    DEFAULT_BASE_PATH,
    DEFAULT_TEST_KEY,
    ErrorStatus,
    ReauthorizeEcho,
    SandboxConfig,
)
from popbatch.sandbox.errors import SandboxError
from popbatch.sandbox.faults import FaultKind, Faults, RetryAfterStyle
from popbatch.sandbox.ledger import LedgerEvent, OrderView
from popbatch.sandbox.recorder import ReceivedRequest
from popbatch.sandbox.runner import serve_until_signalled
from popbatch.sandbox.script import Script, load_script_file
from popbatch.sandbox.seed import Seed, load_seed_file
from popbatch.sandbox.server import SandboxServer

__all__ = [
    "DEFAULT_BASE_PATH",
    "DEFAULT_TEST_KEY",
    "ErrorStatus",
    "FaultKind",
    "Faults",
    "LedgerEvent",
    "OrderView",
    "ReauthorizeEcho",
    "ReceivedRequest",
    "RetryAfterStyle",
    "SandboxConfig",
    "SandboxError",
    "SandboxServer",
    "Script",
    "Seed",
    "load_script_file",
    "load_seed_file",
    "serve_until_signalled",
]
