"""The `reco` click group: simulate, pedestal, run, metrics, show, and its error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reco.cli import reco


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """simulate -> pedestal -> run through the CLI."""
    d = tmp_path_factory.mktemp("cli")
    cli = CliRunner()
    r = cli.invoke(
        reco,
        [
            "simulate",
            str(d),
            "--frames",
            "6",
            "--pedestal-frames",
            "8",
            "--shape",
            "384x256",
            "--seed",
            "5",
            "--run",
            "300",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    r = cli.invoke(reco, ["pedestal", str(d / "run00299.h5"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "pedestal of run 299 (8 frames)" in r.output
    r = cli.invoke(
        reco,
        [
            "run",
            str(d / "run00300.h5"),
            "--pedestal",
            str(d / "pedestal_run00299.h5"),
            "--workers",
            "2",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "run 300: 6 events" in r.output
    return {
        "dir": d,
        "out": d / "run00300_reco.h5",
        "truth": d / "run00300_truth.h5",
        "raw": d / "run00300.h5",
        "ped": d / "pedestal_run00299.h5",
    }


def test_metrics_json(chain: dict[str, Path]) -> None:
    r = CliRunner().invoke(reco, ["metrics", str(chain["out"]), str(chain["truth"]), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["run"] == 300 and m["frames"] == 6
    assert {
        "efficiency",
        "clean_efficiency",
        "merge_rate",
        "fragment_rate",
        "fakes_per_empty_frame",
        "energy_fit",
        "energy_bins",
    } <= set(m)
    for k in m["by_kind"].values():  # the light of both estimates, sc_light and sc_spotlight
        assert {"response", "resolution", "spot_response", "spot_resolution"} <= set(k)


def test_metrics_table(chain: dict[str, Path]) -> None:
    r = CliRunner().invoke(reco, ["metrics", str(chain["out"]), str(chain["truth"])])
    assert r.exit_code == 0 and "clean_efficiency" in r.output
    assert "per kind" in r.output and "spot" in r.output


def test_show_writes_png(chain: dict[str, Path], tmp_path: Path) -> None:
    png = tmp_path / "ev.png"
    r = CliRunner().invoke(reco, ["show", str(chain["out"]), "--event", "1", "-o", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_show_without_raw_file(chain: dict[str, Path], tmp_path: Path) -> None:
    lone = tmp_path / "alone.h5"
    lone.write_bytes(chain["out"].read_bytes())
    r = CliRunner().invoke(reco, ["show", str(lone), "--event", "0"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "alone_ev0.png").exists()


def test_run_with_config_and_directional(chain: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "reco.toml"
    cfg.write_text("[clustering]\neps = 3\n")
    out = tmp_path / "o.h5"
    r = CliRunner().invoke(
        reco,
        [
            "run",
            str(chain["raw"]),
            "--pedestal",
            str(chain["ped"]),
            "--config",
            str(cfg),
            "--directional",
            "-o",
            str(out),
            "--max-frames",
            "2",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "2 events" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "{raw}", "--pedestal", "{dir}/nope.h5"], "nope.h5: pedestal file not found"),
        (["run", "{ped}", "--pedestal", "{ped}"], "no 'frames' dataset"),
        (["show", "{out}", "--event", "99"], "no event 99"),
        (["show", "{raw}", "--event", "0"], "not a reconstruction output file"),
        (["metrics", "{out}", "{out}"], "not a truth file"),
        (["pedestal", "{out}"], "no 'frames' dataset"),
        (["simulate", "{dir}/s", "--shape", "16x16"], "too small"),
    ],
)
def test_errors_exit_one_with_one_line(chain: dict[str, Path], args: list[str], message: str) -> None:
    argv = [a.format(**chain) for a in args]
    r = CliRunner().invoke(reco, argv)
    assert r.exit_code == 1, r.output
    assert message in r.output
    assert r.output.strip().count("\n") == 0 and r.output.startswith("Error: ")


def test_usage_errors_exit_two(chain: dict[str, Path]) -> None:
    assert CliRunner().invoke(reco, ["run", str(chain["raw"])]).exit_code == 2  # --pedestal missing
    assert CliRunner().invoke(reco, ["simulate", "x", "--shape", "abc"]).exit_code == 2
    assert CliRunner().invoke(reco, ["run", "a", "--pedestal", "b", "--workers", "0"]).exit_code == 2


def test_simulate_presets_and_scales(tmp_path: Path) -> None:
    import h5py

    args = [
        "simulate",
        str(tmp_path),
        "--frames",
        "2",
        "--pedestal-frames",
        "2",
        "--shape",
        "64x64",
        "--no-progress",
    ]
    r = CliRunner().invoke(reco, [*args, "--preset", "easy", "--brightness", "2", "--diffusion", "0.5"])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "run01001_truth.h5") as f:
        assert f.attrs["model"] == "easy" and f.attrs["photons_per_kev"] == 120.0
        sim = json.loads(f.attrs["simulation"])
        assert sim["spot_sigma"] == [0.5, 1.25] and sim["row_sigma"] == 0.0
    assert CliRunner().invoke(reco, [*args, "--brightness", "0"]).exit_code == 2
    assert CliRunner().invoke(reco, [*args, "--preset", "hard"]).exit_code == 2
