"""FTS3-REST-compatible transfer service doing real copies with gfal2 (testbed).

Start it in the foreground::

    python -m testbed.fts --host 127.0.0.1 --port 8446 --db .state/fts.db \\
        --s3-credentials .state/s3-credentials.json [--max-active 4 --max-per-link 2]

Health: ``GET /`` answers 200 with ``{"api": {"major", "minor", "patch"}, ...}``. Rucio uses it with
``transfertool = fts3`` and the RSE attribute ``fts = http://host:port``; the ``fts3`` PyPI client works with
``fts3.rest.client.easy.Context("http://host:port", verify=False)`` and no certificate.

Modules: api (REST endpoints), submission (validation → rows), store (SQLite WAL), states (state machine),
scheduler (limits, priorities, retries, staging, archiving, restart recovery), copier (gfal2 copies and
checksums), credentials (per-host S3 keys on the gfal2 context), tape (WLCG Tape REST client), views (JSON
shapes), urls, checksums, ids, clock, errors, metrics, service (wiring).
"""
