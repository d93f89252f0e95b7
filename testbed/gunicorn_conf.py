"""gunicorn settings of the testbed's Rucio server (passed with `-c python:testbed.gunicorn_conf`)."""

import testbed.sqlite_tuning  # noqa: F401  (registers the SQLite transaction hooks before the app loads)
