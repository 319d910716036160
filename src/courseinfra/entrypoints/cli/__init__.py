"""The ``courseinfra`` command line. Data goes to standard output (JSON where asked); progress, tables
for people and errors go to standard error. One module a feature; ``main`` builds the root command."""

from courseinfra.entrypoints.cli.main import cli, main

__all__ = ["cli", "main"]
