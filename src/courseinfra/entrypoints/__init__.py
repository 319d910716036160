"""Entry points: the ``courseinfra`` command line and the REST API."""
