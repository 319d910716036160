"""The console's pages, one module each; the console finds every module of this package (see
``courseinfra.entrypoints.console`` for what a page module declares)."""
