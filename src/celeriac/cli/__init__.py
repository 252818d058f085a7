"""The ``celeriac`` command line: one module per verb, wired up in `celeriac.cli.main`."""
