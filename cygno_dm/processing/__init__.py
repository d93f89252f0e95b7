"""Reconstruction of Rucio DIDs: resolve runs, read (or recall from tape) and verify them, find their pedestal,
reconstruct, and register the outputs with provenance.

`cygno_dm.processing.pipeline.Processor` is the library entry point (the lifecycle daemons call it); `cygno-dm reco
run SCOPE:NAME` is the command line on top of it (`cygno_dm.processing.cli`).
"""
