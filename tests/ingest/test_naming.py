"""Raw DID names and run-period datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cygno_dm.ingest.naming import RunNameError, dataset_name, did_for_file, parse_did_name, period_runs
from cygno_dm.profile import load_profile, parse_profile

PROFILE = load_profile("cygno-testbed")


def _with_per(per: int):
    data = PROFILE.model_dump()
    data["naming"]["runs_per_dataset"] = per
    return parse_profile(data)


def test_dataset_of_a_run_uses_x_for_the_period():
    run = parse_did_name(PROFILE, "LNGS/run114497.mid.gz")
    assert (run.tag, run.run) == ("LNGS", 114497)
    assert dataset_name(PROFILE, run) == "LNGS/runs-1144xx"
    assert dataset_name(PROFILE, parse_did_name(PROFILE, "MAN/run00042.mid.gz")) == "MAN/runs-000xx"


def test_period_that_is_not_a_power_of_ten_uses_a_range():
    prof = _with_per(50)
    assert dataset_name(prof, parse_did_name(prof, "LNF/run12377.mid.gz")) == "LNF/runs-12350-12399"
    assert dataset_name(_with_per(1), parse_did_name(prof, "LNF/run12377.mid.gz")) == "LNF/runs-12377"


def test_bad_names_are_refused_with_the_rule():
    for bad in ("LNGS/run12.mid.gz", "XYZ/run12345.mid.gz", "LNGS/run12345.mid", "run12345.mid.gz"):
        with pytest.raises(RunNameError, match="breaks rule raw-file-name: files in raw scopes of cygno are"):
            parse_did_name(PROFILE, bad)


def test_tag_comes_from_the_directory_or_is_given():
    assert did_for_file(PROFILE, Path("/daq/LNGS/run12345.mid.gz")).name == "LNGS/run12345.mid.gz"
    assert did_for_file(PROFILE, Path("/daq/run12345.mid.gz"), "LNF").name == "LNF/run12345.mid.gz"


def test_a_period_across_a_power_of_ten_is_one_dataset():
    prof = _with_per(7)
    names = [dataset_name(prof, parse_did_name(prof, f"LNGS/run{r:05d}.mid.gz")) for r in (99995, 99999, 100001)]
    assert names == ["LNGS/runs-099995-100001"] * 3


def test_runs_sort_numerically():
    names = ["LNGS/run100000.mid.gz", "LNGS/run99999.mid.gz", "LNGS/run100001.mid.gz"]
    runs = sorted(parse_did_name(PROFILE, n) for n in names)
    assert [r.run for r in runs] == [99999, 100000, 100001]


@given(run=st.integers(min_value=0, max_value=10**9), per=st.sampled_from([1, 7, 10, 50, 100, 1000]))
def test_every_run_falls_in_its_period_and_dataset_names_are_valid(run, per):
    prof = _with_per(per)
    r = parse_did_name(prof, f"LNGS/run{run:05d}.mid.gz")
    assert run in period_runs(prof, r)
    ds = dataset_name(prof, r)
    assert ds.startswith("LNGS/runs-")
    other = parse_did_name(prof, f"LNGS/run{period_runs(prof, r)[-1]:05d}.mid.gz")
    assert dataset_name(prof, other) == ds
