"""Fixtures of the end-to-end field cases: popbatch pointed at the sandbox.

``popbatch`` is the command line with a journal and an output folder under
the test's ``tmp_path``, sending to the session sandbox (reset before each
test by the suite's conftest). See ``e2e_runs`` for what a run returns.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_runs import Popbatch

from popbatch.sandbox import SandboxServer


@pytest.fixture
def popbatch(sandbox: SandboxServer, tmp_path: Path) -> Popbatch:
    """The popbatch command line for one test, pointed at the sandbox."""
    return Popbatch(sandbox, tmp_path)
