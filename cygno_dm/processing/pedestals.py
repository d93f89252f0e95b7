"""The pedestal of a run: the latest pedestal run before it with enough events, found in the run metadata in Rucio.

A pedestal run is a raw file of the same TAG whose metadata match the profile's `processing.pedestal_filter`
(default `run_type=pedestal`; CYGNO's run-log flag would be `pedestal_run=1`) and have
`number_of_events >= processing.pedestal_min_events`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from cygno_dm.processing.catalog import ProcessingCatalog
from cygno_dm.processing.dids import RawFile, parse_filter
from cygno_dm.processing.errors import ProcessingError
from cygno_dm.processing.register import settings
from cygno_dm.profile import Profile
from reco.pedestal import Pedestal, compute_pedestal, load_pedestal, write_pedestal
from reco.runsource import open_run

log = logging.getLogger(__name__)


def pedestal_run(catalog: ProcessingCatalog, profile: Profile, raw: RawFile) -> str:
    """Name of the pedestal run of `raw` (in its scope); ProcessingError when there is none."""
    proc = settings(profile)
    groups = parse_filter(proc.pedestal_filter, name=f"{raw.tag}/run*")
    for group in groups:
        group["run_number.lt"] = raw.run
        group["number_of_events.gte"] = proc.pedestal_min_events
    names = catalog.list_dids(raw.scope, groups, f"{raw.did}: pedestal search")
    runs = {}
    for name in names:
        m = profile.naming.raw_name_re.match(name)
        if m and m["tag"] == raw.tag:
            runs[int(m["run"])] = name
    if not runs:
        raise ProcessingError(
            f"{raw.did}: no pedestal run before run {raw.run} with number_of_events >= {proc.pedestal_min_events} "
            f"({proc.pedestal_filter} among {raw.scope}:{raw.tag}/run*)")
    return runs[max(runs)]


def make_pedestal(raw_path: Path, out: Path, frames: int, progress: Callable[[int], None] | None = None,
                  on_start: Callable[[int], None] | None = None) -> Pedestal:
    """Compute the pedestal map of a local pedestal run file (MIDAS or HDF5 raw) and write it to `out`."""
    with contextlib.closing(open_run(raw_path)) as run:
        if on_start:
            on_start(min(frames, run.n_frames) if run.n_frames is not None else frames)
        ped = compute_pedestal(run, frames, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_pedestal(out, ped, raw_path)
    return load_pedestal(out)


def made_from(path: Path, adler32: str) -> bool:
    """Whether a local pedestal file was computed from a raw file with this adler32."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("source_adler32", "")) == adler32
    except OSError:
        return False
