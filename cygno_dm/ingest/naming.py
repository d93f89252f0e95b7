"""Raw run file names: the DID of a DAQ file, its run number and the dataset of its run period."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cygno_dm.profile import Profile


class RunNameError(ValueError):
    """A file or DID name breaks the raw naming rule; the message names the rule."""


@dataclass(frozen=True, order=True)
class RunFile:
    """One raw file: TAG, run (sequence) number, its DID name and the groups of the profile's naming pattern."""

    tag: str
    run: int
    name: str
    groups: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def basename(self) -> str:
        """`run<N><suffix>`."""
        return self.name.split("/", 1)[1]


def parse_did_name(profile: Profile, name: str) -> RunFile:
    """Validate a raw DID name against the profile (the policy package's rule) and return its parts."""
    from rucio_policies.experiments import Experiment
    from rucio_policies.naming import raw_file_rule

    m = profile.naming.raw_name_re.fullmatch(name)
    if not m:
        rule = raw_file_rule(Experiment(profile))
        raise RunNameError(f"DID name {name!r} breaks rule {rule.id}: {rule.text}")
    return RunFile(m["tag"], int(m["run"]), name, {k: v for k, v in m.groupdict().items() if v is not None})


def did_for_file(profile: Profile, path: Path, tag: str | None = None) -> RunFile:
    """The raw DID of a DAQ file: TAG from `tag`, else from its parent directory name."""
    tag = tag or path.parent.name
    return parse_did_name(profile, f"{tag}/{path.name}")


def dataset_name(profile: Profile, run: RunFile) -> str:
    """The dataset of a file: the profile's `naming.dataset` template filled from the name, e.g. `LNF/20261130`;
    else its run period, e.g. `LNGS/runs-1144xx` (100 runs) or `LNGS/runs-114400-114449` (50)."""
    if profile.naming.dataset is not None:
        return profile.naming.dataset.format(**run.groups)
    per = profile.naming.runs_per_dataset
    digits = run.basename.removeprefix("run").removesuffix(profile.naming.raw_suffix)
    first = run.run - run.run % per
    # a period that crosses a power of ten (99995-100001) holds names of two widths: pad to the wider one, so
    # every file of the period gets the same dataset
    width = max(len(digits), len(str(first + per - 1)))
    text = f"{first:0{width}d}"
    zeros = len(str(per)) - 1
    if per == 10**zeros and zeros > 0 and text.endswith("0" * zeros):
        return f"{run.tag}/runs-{text[:-zeros]}{'x' * zeros}"
    if per == 1:
        return f"{run.tag}/runs-{text}"
    return f"{run.tag}/runs-{text}-{first + per - 1:0{width}d}"


def period_runs(profile: Profile, run: RunFile) -> range:
    """Run numbers belonging to the dataset of `run`."""
    per = profile.naming.runs_per_dataset
    first = run.run - run.run % per
    return range(first, first + per)
