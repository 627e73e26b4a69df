"""The command line: options in, one pipeline call, a message and an exit code out.

This package is the only part of popbatch that imports click, prints, or
exits. Errors from the rest of popbatch arrive as PopbatchError and leave as
one ``Error:`` line, an optional hint line, and DESIGN.md's exit code; a
traceback only with ``--debug``.

The click group ``main`` is here, with the error handling every command
shares; the commands live by concern: ``operations`` (capture, cancel,
reauthorize, authorize), ``batches`` (validate, status, report, resolve) and
``sandbox``. ``options`` holds the options they share and turns their values
into settings; ``output`` is everything a person sees or answers: errors,
questions, the problem table, progress, and the signal handlers.
"""

from __future__ import annotations

from typing import Any

import click

from popbatch import __version__
from popbatch.cli import batches, operations, sandbox
from popbatch.cli.output import echo_error
from popbatch.errors import ExitCode, PopbatchError

__all__ = ["main"]

_REFUND_WORDS = frozenset({"refund", "refunds", "void"})


class PopbatchGroup(click.Group):
    """A click group that turns PopbatchError into a message and an exit code.

    Every error leaves as ``Error: ...`` on stderr, an optional hint line,
    and DESIGN.md's exit code; a traceback is printed only with --debug.
    """

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Point a refund to ``cancel``, POP's operation for it."""
        if args and args[0].lower() in _REFUND_WORDS and args[0] not in self.commands:
            ctx.fail(
                f"No such command {args[0]!r}. Refunds are 'popbatch cancel FILE' "
                "(POP's card-cancel: an amount refunds part, a blank amount all)."
            )
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except PopbatchError as error:
            echo_error(ctx, error.message, error.hint)
            ctx.exit(int(error.exit_code))
        except KeyboardInterrupt:
            echo_error(ctx, "interrupted; nothing was sent")
            ctx.exit(int(ExitCode.INTERRUPTED))
        except Exception as error:
            # A bug, not a user error: one line, and the traceback on request.
            echo_error(
                ctx,
                f"popbatch stopped on an internal error ({type(error).__name__})",
                "This is a bug. The journal records what was sent; run the same "
                "command with --debug to see the traceback, and report it.",
            )
            ctx.exit(int(ExitCode.INTERNAL_ERROR))


@click.group(
    name="popbatch",
    cls=PopbatchGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="popbatch")
def main() -> None:
    """Bulk VeriTrans4G POP card operations from CSV and Excel files.

    Test mode is the default: every request carries dummy true unless
    --live is given. Settings may live in ./popbatch.toml (see --config);
    the server key comes from POP_SERVER_KEY or --server-key-file only.
    Exit codes are listed in the README.
    """


for _command in (*operations.COMMANDS, *batches.COMMANDS, *sandbox.COMMANDS):
    main.add_command(_command)
