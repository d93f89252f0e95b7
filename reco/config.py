"""Reconstruction parameters (TOML), named as in the CYGNO reference chain."""

from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from reco.errors import RecoInputError

log = logging.getLogger(__name__)

# TOML section each parameter lives in; the names are those of CYGNUS-RD/reconstruction.
SECTIONS: dict[str, tuple[str, ...]] = {
    "preprocessing": (
        "cimax",
        "nsigma",
        "rebin",
        "min_neighbors_average",
        "macro_threshold",
        "spark_veto",
        "spark_threshold",
    ),
    "clustering": ("eps", "min_samples", "eps_tail", "min_samples_tail", "cluster_cut_min"),
    "features": ("light_ring", "row_clip", "noisy_factor", "spot_half", "spot_kappa"),
    "directional": (
        "directional",
        "dir_radius",
        "dir_min_accuracy",
        "dir_minsamples",
        "dir_thickness",
        "dir_iterations",
        "seed",
    ),
}


@dataclass(frozen=True)
class RecoConfig:
    """All tunable parameters of the chain."""

    cimax: int = 5000
    nsigma: float = 1.0
    rebin: int = 4
    min_neighbors_average: float = 0.33
    macro_threshold: float = 0.5
    spark_veto: bool = True
    spark_threshold: float = 20.0
    row_clip: float = 3.0
    noisy_factor: float = 4.0
    eps: int = 2
    min_samples: int = 10
    eps_tail: int = 2
    min_samples_tail: int = 6
    cluster_cut_min: int = 1
    light_ring: int = 1
    spot_half: int = 24
    spot_kappa: float = 25.0
    directional: bool = False
    dir_radius: float = 6.0
    dir_min_accuracy: float = 0.8
    dir_minsamples: int = 10
    dir_thickness: float = 1.5
    dir_iterations: int = 100
    seed: int = 12345

    def __post_init__(self) -> None:
        checks = [
            (self.cimax > 0, "cimax", "must be > 0"),
            (self.nsigma >= 0, "nsigma", "must be >= 0"),
            (1 <= self.rebin <= 64, "rebin", "must be an integer in 1..64"),
            (0 <= self.min_neighbors_average <= 1, "min_neighbors_average", "must be in [0, 1]"),
            (self.macro_threshold >= 0, "macro_threshold", "must be >= 0"),
            (self.spark_threshold > 0, "spark_threshold", "must be > 0"),
            (1 <= self.eps <= 32, "eps", "must be an integer in 1..32"),
            (self.min_samples > 0, "min_samples", "must be > 0"),
            (0 <= self.eps_tail <= 32, "eps_tail", "must be an integer in 0..32 (0: no tail pass)"),
            (self.min_samples_tail > 0, "min_samples_tail", "must be > 0"),
            (0 <= self.light_ring <= 8, "light_ring", "must be an integer in 0..8"),
            (self.row_clip > 0, "row_clip", "must be > 0"),
            (
                0 <= self.spot_half <= 64,
                "spot_half",
                "must be an integer in 0..64 (0: sc_spotlight = sc_light)",
            ),
            (self.spot_kappa >= 0, "spot_kappa", "must be >= 0"),
            (self.noisy_factor > 0, "noisy_factor", "must be > 0"),
            (self.cluster_cut_min >= 1, "cluster_cut_min", "must be >= 1"),
            (self.dir_radius >= 0, "dir_radius", "must be >= 0"),
            (0 < self.dir_min_accuracy <= 1, "dir_min_accuracy", "must be in (0, 1]"),
            (self.dir_minsamples >= 2, "dir_minsamples", "must be >= 2"),
            (self.dir_thickness > 0, "dir_thickness", "must be > 0"),
            (self.dir_iterations >= 1, "dir_iterations", "must be >= 1"),
            (0 <= self.seed < 2**63, "seed", "must be in [0, 2**63)"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise RecoInputError(f"config: {name}={getattr(self, name)!r} {rule}")

    @property
    def tail_pass(self) -> tuple[int, float] | None:
        """(eps, min_samples) of the tail pass, never tighter than the seed pass; None when off."""
        if not self.eps_tail:
            return None
        return max(self.eps_tail, self.eps), float(min(self.min_samples_tail, self.min_samples))

    def to_json(self) -> str:
        """Canonical JSON text of the parameters (sorted keys), stored in output files."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def to_toml(self) -> str:
        """TOML text of the parameters, grouped by section."""
        lines: list[str] = []
        values = dataclasses.asdict(self)
        for section, names in SECTIONS.items():
            lines.append(f"[{section}]")
            for name in names:
                lines.append(f"{name} = {_toml_value(values[name])}")
            lines.append("")
        return "\n".join(lines)

    def replace(self, **changes: Any) -> RecoConfig:
        """Copy with some parameters changed (validated)."""
        return dataclasses.replace(self, **changes)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def config_from_mapping(data: dict[str, Any], source: str = "config") -> RecoConfig:
    """Build a config from a parsed TOML mapping (sections or flat keys)."""
    known = {f.name: f for f in fields(RecoConfig)}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in SECTIONS and key != "reco":
                raise RecoInputError(f"{source}: unknown section [{key}]")
            flat.update(value)
        else:
            flat[key] = value
    kwargs: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in known:
            raise RecoInputError(f"{source}: unknown parameter {key!r}")
        default = getattr(RecoConfig, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise RecoInputError(f"{source}: {key} must be true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise RecoInputError(f"{source}: {key} must be an integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RecoInputError(f"{source}: {key} must be a number, got {value!r}")
            value = float(value)
        kwargs[key] = value
    return RecoConfig(**kwargs)


def load_config(path: str | Path | None) -> RecoConfig:
    """Read a TOML config file; None gives the defaults."""
    if path is None:
        return RecoConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RecoInputError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecoInputError(f"{path}: invalid TOML: {exc}") from exc
    log.debug("loaded config %s", path)
    return config_from_mapping(data, str(path))
