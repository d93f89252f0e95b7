"""Resolve what to reconstruct: a file DID, a dataset or container, or a metadata filter, into raw run files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cygno_dm.processing.errors import ProcessingError
from cygno_dm.profile import Profile

if TYPE_CHECKING:
    from cygno_dm.processing.catalog import ProcessingCatalog

DID_RE = re.compile(r"^(?P<scope>[^:\s]+):(?P<name>\S+)$")


@dataclass(frozen=True)
class RawFile:
    """A raw run file in Rucio with the size and adler32 the catalogue holds."""

    scope: str
    name: str
    tag: str
    run: int
    digits: str  # the run number as spelled in the name (run01001 -> "01001")
    bytes: int
    adler32: str

    @property
    def did(self) -> str:
        """`scope:name`."""
        return f"{self.scope}:{self.name}"


def looks_like_did(text: str) -> bool:
    """Whether a command-line argument is meant as a DID (`scope:name`) rather than a local path."""
    return bool(DID_RE.match(text)) and "/" not in text.split(":", 1)[0]


def parse_did(text: str, profile: Profile) -> tuple[str, str]:
    """(scope, name) of a DID string; ProcessingError naming the rule a bad one breaks."""
    from rucio_policies.experiments import registry_of
    from rucio_policies.naming import NameRuleError, check_did_name, check_scope_name

    m = DID_RE.match(text)
    if not m:
        raise ProcessingError(f"{text!r}: not a DID: expected SCOPE:NAME, e.g. "
                              f"{profile.scopes.raw[0]}:{profile.naming.tags[0]}/run01001{profile.naming.raw_suffix}")
    scope, name = m["scope"], m["name"]
    try:
        check_scope_name(scope)
        check_did_name(registry_of([profile]), scope, name)
    except NameRuleError as err:
        raise ProcessingError(f"{text}: not a valid DID: {err}") from None
    if scope not in profile.scopes.all:
        raise ProcessingError(f"{text}: scope {scope!r} is not one of {profile.experiment.name}'s scopes "
                              f"{profile.scopes.all}")
    return scope, name


def raw_file(catalog: ProcessingCatalog, profile: Profile, scope: str, name: str) -> RawFile:
    """The raw run file `scope:name` as the catalogue has it; ProcessingError if it is not one."""
    did = f"{scope}:{name}"
    if scope not in profile.scopes.raw:
        raise ProcessingError(f"{did}: not in a raw scope ({', '.join(profile.scopes.raw)}); only raw runs are "
                              "reconstructed")
    m = profile.naming.raw_name_re.match(name)
    if not m:
        raise ProcessingError(f"{did}: not a raw run file name <TAG>/run<N>{profile.naming.raw_suffix}")
    info = catalog.get_file(scope, name)
    if info is None:
        raise ProcessingError(f"{did}: no such DID in Rucio")
    if str(info.get("type", "FILE")).upper() != "FILE":
        raise ProcessingError(f"{did}: is a {info['type']}, not a file")
    if info.get("bytes") is None or not info.get("adler32"):
        raise ProcessingError(f"{did}: Rucio has no size or adler32 for it, so what is read cannot be verified")
    return RawFile(scope, name, m["tag"], int(m["run"]), m["run"], int(info["bytes"]), str(info["adler32"]).lower())


def parse_filter(text: str, name: str = "*") -> list[dict[str, Any]]:
    """Rucio's DID filter groups for a `rucio did list --filter` string (',' and, ';' or)."""
    from rucio.common.exception import DIDFilterSyntaxError, DuplicateCriteriaInDIDFilter
    from rucio.common.utils import parse_did_filter_from_string_fe

    try:
        filters, _ = parse_did_filter_from_string_fe(text, name)
    except (DIDFilterSyntaxError, DuplicateCriteriaInDIDFilter, ValueError) as err:
        raise ProcessingError(f"--filter {text!r}: {type(err).__name__}: {err}") from None
    return filters


def resolve(catalog: ProcessingCatalog, profile: Profile, target: str | None = None, scope: str | None = None,
            filter_: str | None = None) -> list[tuple[str, str]]:
    """(scope, name) of every file a DID (file, dataset, container) or a --filter on a scope designates.

    A DID and a filter together select the DID's files that match the filter. Runs are sorted numerically.
    """
    if target is None and filter_ is None:
        raise ProcessingError("nothing to reconstruct: give a DID or --filter")
    if target is not None:
        scope, name = parse_did(target, profile)
        info = catalog.get_file(scope, name)
        if info is None:
            raise ProcessingError(f"{target}: no such DID in Rucio")
        if str(info.get("type", "FILE")).upper() == "FILE":
            files = [(scope, name)]
        else:
            files = catalog.files_of(scope, name)
            if not files:
                raise ProcessingError(f"{target}: the {str(info['type']).lower()} has no files")
    else:
        scope = scope or profile.scopes.raw[0]
        if scope not in profile.scopes.all:
            raise ProcessingError(f"--scope {scope!r} is not one of {profile.experiment.name}'s scopes "
                                  f"{profile.scopes.all}")
        files = None
    if filter_ is not None:
        matching = set(catalog.list_dids(scope, parse_filter(filter_), f"--filter {filter_!r}"))
        files = [(scope, n) for n in sorted(matching)] if files is None else \
            [(s, n) for s, n in files if s == scope and n in matching]
        if not files:
            where = f"the files of {target}" if target else f"scope {scope}"
            raise ProcessingError(f"--filter {filter_!r}: no file in {where} matches")
    return sorted(files, key=lambda sn: _run_key(profile, *sn))


def _run_key(profile: Profile, scope: str, name: str) -> tuple[str, str, int, str]:
    m = profile.naming.raw_name_re.match(name)
    return (scope, m["tag"], int(m["run"]), name) if m else (scope, "~", 0, name)
