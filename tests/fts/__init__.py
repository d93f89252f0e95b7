"""Tests of the FTS3-REST-compatible transfer service (testbed/fts)."""
