"""Where a file can be read from: its AVAILABLE disk replicas, closest first by the profile's distances, and tape."""

from __future__ import annotations

from dataclasses import dataclass, field

from cygno_dm.processing.catalog import ProcessingCatalog
from cygno_dm.profile import Profile

FAR = 10**6  # distance of an RSE the profile gives no distance for


def distance(profile: Profile, site: str, rse: str) -> int:
    """The profile's distance from `site` to `rse` (0 to itself; either direction; FAR when unknown)."""
    if site == rse:
        return 0
    there = profile.distances.get(site, {}).get(rse)
    back = profile.distances.get(rse, {}).get(site)
    return min(d for d in (there, back, FAR) if d is not None)


def closest_first(profile: Profile, site: str, rses: list[str]) -> list[str]:
    """RSEs ordered by the profile's distance from `site` (ties by name)."""
    return sorted(rses, key=lambda rse: (distance(profile, site, rse), rse))


@dataclass(frozen=True)
class Placement:
    """The replicas of one file: AVAILABLE disk RSEs (closest first), AVAILABLE tape RSEs, the rest by state."""

    disk: list[str]
    tape: list[str]
    other: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """A short account of the replicas, for messages."""
        parts = [f"{rse}: AVAILABLE" for rse in self.disk] + [f"{rse} (tape): AVAILABLE" for rse in self.tape]
        parts += [f"{rse}: {state}" for rse, state in sorted(self.other.items())]
        return ", ".join(parts) or "no replica anywhere"


def placement(catalog: ProcessingCatalog, profile: Profile, site: str, scope: str, name: str) -> Placement:
    """Where `scope:name` is, with the disk replicas ordered by distance from `site`."""
    disk, tape, other = [], [], {}
    for rep in catalog.replicas(scope, name):
        if rep.state != "AVAILABLE":
            other[rep.rse] = rep.state
        elif catalog.is_tape(rep.rse):
            tape.append(rep.rse)
        else:
            disk.append(rep.rse)
    return Placement(closest_first(profile, site, disk), closest_first(profile, site, tape), other)
