"""Allow ``python -m popbatch``."""

from popbatch.cli import main

main(prog_name="popbatch")
