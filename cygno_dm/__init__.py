"""cygno-dm: data management for CYGNO and the INFN PSGE experiments on Rucio and FTS."""

__version__ = "0.1.0"
