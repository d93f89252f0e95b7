"""`cygno-dm lifecycle campaign create|status|cancel` on the state database (no Rucio needed): what a campaign
records, the rules its arguments follow, ETA, and a cancel that stops pending runs and leaves done ones."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import reco
from lifecycle.cli import lifecycle
from lifecycle.store import Store, database_url


def cli(tmp_path: Path, *args: str):
    return CliRunner().invoke(lifecycle, [*args, "--state-dir", str(tmp_path)], catch_exceptions=False)


def test_a_campaign_is_recorded_shown_and_cancelled(tmp_path: Path) -> None:
    cfg = tmp_path / "reco.toml"
    cfg.write_text("[preprocessing]\nnsigma = 1.5\n")
    res = cli(tmp_path, "campaign", "create", "winter26", "--runs", "1000-2000", "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert "runs run_number>=1000,run_number<=2000" in res.output
    store = Store(database_url(None, tmp_path))
    camp = store.campaign("winter26")
    assert (camp.state, camp.software_version, json.loads(camp.config)["nsigma"]) == ("active", reco.__version__, 1.5)

    store.see("winter26", [(f"cygno-data:LNF/run0{n}.mid.gz", n, False) for n in (1000, 1001, 1002)])
    assert store.claim("cygno-data:LNF/run01000.mid.gz", "winter26", "d", 60)
    store.done("cygno-data:LNF/run01000.mid.gz", "winter26", "cygno-analysis:RECO/x/LNF/run01000_reco.h5", "d")
    status = json.loads(cli(tmp_path, "campaign", "status", "winter26", "--json").output)
    assert status["counts"]["done"] == 1 and status["counts"]["seen"] == 2 and status["eta_seconds"] is not None
    assert status["staging"] is None, "no daemon has set a staging window yet"

    # A run recalled from tape holds a slot of the window and counts as waiting for tape.
    store.set_window("winter26", 5, None)
    store.take_slot("cygno-data:LNF/run01001.mid.gz", "winter26", 1234)
    store.wait("cygno-data:LNF/run01001.mid.gz", "winter26", "tape: staging to DISK by rule abc (REPLICATING)")
    status = json.loads(cli(tmp_path, "campaign", "status", "winter26", "--json").output)
    assert status["summary"] == {"done": 1, "running": 0, "waiting_for_tape": 1, "waiting": 1, "failed": 0,
                                 "cancelled": 0}
    assert (status["staging"]["runs"], status["staging"]["used_runs"], status["staging"]["used_bytes"]) == (5, 1, 1234)
    text = cli(tmp_path, "campaign", "status", "winter26").output
    assert "1 done, 0 running, 1 waiting for tape, 1 waiting, 0 failed; staging window 1/5 runs, 1,234 bytes" in text

    res = cli(tmp_path, "campaign", "cancel", "winter26")
    assert res.exit_code == 0 and "cancelled (2 pending runs)" in res.output
    counts = store.counts("winter26")
    assert (counts["done"], counts["cancelled"], counts["seen"]) == (1, 2, 0)
    res = cli(tmp_path, "run", "--campaign", "winter26", "--once", "--job-rucio-config", str(cfg))
    assert res.exit_code == 2 and "the campaign is cancelled" in res.output


def test_campaign_arguments_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    cases = {("x",): "give exactly one of --runs A-B and --filter FILTER",
             ("x", "--runs", "5-2"): "--runs '5-2': expected A-B with run numbers A <= B",
             ("x", "--runs", "1-2", "--filter", "run_type=physics"): "give exactly one of",
             ("bad/name", "--runs", "1-2"): "campaign name 'bad/name' must match",
             ("x", "--filter", "run_number>>3"): "--filter 'run_number>>3'"}
    for args, message in cases.items():
        res = cli(tmp_path, "campaign", "create", *args)
        assert res.exit_code == 2 and message in res.output, (args, res.output)
    assert cli(tmp_path, "campaign", "create", "x", "--runs", "1-2").exit_code == 0
    res = cli(tmp_path, "campaign", "create", "x", "--runs", "3-4")
    assert res.exit_code == 2 and "campaign 'x' exists already" in res.output
    assert cli(tmp_path, "campaign", "status", "nope").exit_code == 2
