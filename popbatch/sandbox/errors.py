"""The one error the sandbox raises for bad settings, seeds, scripts or ports."""

from __future__ import annotations

from popbatch.errors import ConfigurationError


class SandboxError(ConfigurationError):
    """The sandbox cannot start or cannot take a setting, seed or script.

    The message is one line that names the file, field or port at fault.
    """
