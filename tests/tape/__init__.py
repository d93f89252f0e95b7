"""Tests of the testbed tape endpoint."""
