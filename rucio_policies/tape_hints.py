"""FTS3 archive metadata for tape: collocation hints (experiment, data type, run period) per file."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from rucio_policies.experiments import Experiment, registry

LOGGER = logging.getLogger(__name__)

ALGORITHM = "psge_collocation"


def run_period(exp: Experiment, run: int, prefix: str = "") -> str:
    """The run block holding `run`: `[<prefix>/]run<first>-<last>`, blocks of naming.runs_per_dataset runs."""
    n = exp.profile.naming
    size = n.runs_per_dataset
    first = run - run % size
    label = f"run{first:0{n.run_digits_min}d}-{first + size - 1:0{n.run_digits_min}d}"
    return f"{prefix}/{label}" if prefix else label


def hints_for(scope: str, name: str) -> dict[str, str]:
    """Collocation levels for a DID: 0 experiment, 1 data type, 2 run period (or directory), 3 sub-directory."""
    exp = registry().experiment_of_scope(scope)
    if exp is None:
        return {"0": "unknown", "1": scope}
    dtype = exp.data_type(scope) or "other"
    hints = {"0": exp.name, "1": dtype}
    if dtype == "user":
        hints["2"] = exp.user_account(scope) or scope
        return hints
    n = exp.profile.naming
    raw = n.raw_name_re.fullmatch(name) if dtype == "raw" else None
    if raw:
        hints["2"] = run_period(exp, int(raw["run"]), raw["tag"])
        return hints
    directory = name.rpartition("/")[0]
    found = re.search(rf"run(\d{{{n.run_digits_min},}})", name.rpartition("/")[2])
    if found:
        hints["2"] = run_period(exp, int(found[1]), directory)
    elif directory:
        hints["2"] = directory
    return hints


def collocation_hints(transfer_metadata: Mapping[str, Any]) -> dict[str, Any]:
    """FTS3 tape plugin: archive_metadata for one file transfer, from Rucio's per-file transfer metadata."""
    scope = transfer_metadata.get("scope")
    scope = str(getattr(scope, "external", scope) or "")
    name = str(transfer_metadata.get("name") or "")
    hints = hints_for(scope, name)
    LOGGER.debug("collocation hints for %s:%s -> %s", scope, name, hints)
    return {"collocation_hints": hints}
