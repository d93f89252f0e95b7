"""Collocation hints: a run period of an experiment's data type lands together on tape."""

from __future__ import annotations

import pytest

from rucio_policies.tape_hints import collocation_hints, hints_for


@pytest.mark.parametrize(("scope", "name", "hints"), [
    ("cygno-data", "LNGS/run114497.mid.gz", {"0": "cygno", "1": "raw", "2": "LNGS/run114400-114499"}),
    ("cygno-data", "LNGS/run114400.mid.gz", {"0": "cygno", "1": "raw", "2": "LNGS/run114400-114499"}),
    ("cygno-data", "LNF/run00042.mid.gz", {"0": "cygno", "1": "raw", "2": "LNF/run00000-00099"}),
    ("cygno-analysis", "RECO/winter23/reco_run114497.h5", {"0": "cygno", "1": "analysis",
                                                           "2": "RECO/winter23/run114400-114499"}),
    ("cygno-sim", "digi/v1/sim.root", {"0": "cygno", "1": "sim", "2": "digi/v1"}),
    ("cygno-sim", "flat.root", {"0": "cygno", "1": "sim"}),
    ("user.alice", "x/y.h5", {"0": "cygno", "1": "user", "2": "alice"}),
    ("nobody", "x", {"0": "unknown", "1": "nobody"}),
])
def test_hints(scope: str, name: str, hints: dict[str, str]) -> None:
    assert hints_for(scope, name) == hints


def test_same_period_same_hints_next_period_differs() -> None:
    a = collocation_hints({"scope": "cygno-data", "name": "LNGS/run114401.mid.gz"})
    b = collocation_hints({"scope": "cygno-data", "name": "LNGS/run114499.mid.gz"})
    c = collocation_hints({"scope": "cygno-data", "name": "LNGS/run114500.mid.gz"})
    assert a == b != c
    assert set(a) == {"collocation_hints"}
