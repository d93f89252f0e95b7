"""Derived DIDs: their names (RECO/<version>/..., PED/...), and their registration with provenance, idempotently."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from rucio.common.exception import RucioException

import reco
from cygno_dm.ingest.catalog import CatalogUnavailable
from cygno_dm.ingest.checksums import adler32_of
from cygno_dm.processing.catalog import ProcessingCatalog, last_line
from cygno_dm.processing.errors import ProcessingError
from cygno_dm.profile import Processing, Profile, Rule
from reco.config import RecoConfig

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def config_hash(cfg: RecoConfig) -> str:
    """Short hash (8 hex digits) of the reconstruction parameters."""
    return hashlib.sha256(cfg.to_json().encode()).hexdigest()[:8]


def settings(profile: Profile) -> Processing:
    """The profile's [processing] section; ProcessingError if it has none."""
    if profile.processing is None:
        raise ProcessingError(f"profile {profile.experiment.name} has no [processing] section (site_rse, "
                              "staging_rse, output_rse): it cannot reconstruct DIDs")
    return profile.processing


def output_scope(profile: Profile) -> str:
    """The scope derived files are registered in."""
    return settings(profile).output_scope or profile.scopes.analysis[0]


def reco_version(profile: Profile, cfg: RecoConfig, software: str = reco.__version__) -> str:
    """The version path of outputs: the profile's template with the software version and the config hash."""
    text = settings(profile).version.format(software=software, config=config_hash(cfg))
    return _UNSAFE.sub("_", text).strip("._-") or config_hash(cfg)


def reco_name(path: str, tag: str, digits: str) -> str:
    """`RECO/<path>/<TAG>/run<N>_reco.h5`; the path is the version, or a campaign's name."""
    return f"RECO/{path}/{tag}/run{digits}_reco.h5"


def reco_dataset(path: str) -> str:
    """The dataset of reconstruction outputs: per version, or per campaign."""
    return f"RECO/{path}"


def pedestal_name(tag: str, digits: str) -> str:
    """`PED/<TAG>/pedestal_run<N>.h5`: the pedestal map of a pedestal run."""
    return f"PED/{tag}/pedestal_run{digits}.h5"


def pedestal_dataset(tag: str) -> str:
    """The dataset of a TAG's pedestal maps."""
    return f"PED/{tag}"


def publish(catalog: ProcessingCatalog, profile: Profile, path: Path, scope: str, name: str, dataset: str,
            meta: dict[str, Any]) -> bool:
    """Register `path` as scope:name on the output RSE with metadata, in `dataset`, with the profile's rules for
    derived data; True if it was uploaded now, False if Rucio already held these bytes (then only what is missing
    is completed). ProcessingError, with nothing registered, if Rucio holds other bytes under this name."""
    did = f"{scope}:{name}"
    rse = settings(profile).output_rse
    size, adler = path.stat().st_size, adler32_of(path)
    existing = catalog.get_file(scope, name)
    if existing is not None:
        theirs = (existing.get("bytes"), (existing.get("adler32") or "").lower())
        if theirs != (size, adler):
            raise ProcessingError(f"{did} is registered with {theirs[0]} bytes, adler32 {theirs[1]}; this output has "
                                  f"{size} bytes, adler32 {adler}: not registered (a version names one content)")
    try:
        catalog.ensure_dataset(scope, dataset, {})
        catalog.ensure_rules(scope, dataset, [Rule(rse_expression=rse), *profile.replication.get("analysis", [])])
    except RucioException as err:
        raise ProcessingError(f"{scope}:{dataset}: {last_line(err)}") from None
    except RuntimeError as err:
        if isinstance(err, CatalogUnavailable):
            raise
        raise ProcessingError(str(err)) from None
    states = {r.rse: r.state for r in catalog.replicas(scope, name)} if existing else {}
    uploaded = "AVAILABLE" not in states.values()
    if uploaded:
        _upload(catalog, path, scope, name, dataset, rse)
    states = {r.rse: r.state for r in catalog.replicas(scope, name)}
    if "AVAILABLE" not in states.values():
        raise ProcessingError(f"{did}: no AVAILABLE replica after the upload to {rse} ({states or 'none'})")
    _complete_metadata(catalog, scope, name, meta)
    catalog.attach(scope, dataset, name)
    log.info("%s %s (%d bytes, adler32 %s) in %s:%s", did, "registered" if uploaded else "was already registered",
             size, adler, scope, dataset)
    return uploaded


def _upload(catalog: ProcessingCatalog, path: Path, scope: str, name: str, dataset: str, rse: str) -> None:
    from rucio.client.uploadclient import UploadClient

    problems: list[str] = []

    class Log:  # UploadClient calls logger.log(level, message): keep its warnings for the error message
        @staticmethod
        def log(level: int, msg: object, *args: Any, **kwargs: Any) -> None:
            text = str(msg) % args if args else str(msg)
            if level >= logging.WARNING:
                problems.append(text)
            log.log(level if level >= logging.WARNING else logging.DEBUG, "upload of %s:%s: %s", scope, name, text)

    try:
        UploadClient(_client=catalog.client, logger=Log).upload([{
            "path": str(path), "rse": rse, "did_scope": scope, "did_name": name,
            "dataset_scope": scope, "dataset_name": dataset}])
    except RucioException as err:
        why = last_line(err) if type(err).__name__ != "NoFilesUploaded" or not problems else problems[-1]
        raise ProcessingError(f"{scope}:{name}: upload to {rse} failed: {why}") from None


def _complete_metadata(catalog: ProcessingCatalog, scope: str, name: str, meta: dict[str, Any]) -> None:
    current = catalog.get_meta(scope, name)
    missing = {k: v for k, v in meta.items() if v is not None and current.get(k) is None}
    for key in sorted(set(meta) - set(missing)):
        if meta[key] is not None and str(current.get(key)) != str(meta[key]):
            log.info("%s:%s keeps %s=%r (not %r)", scope, name, key, current.get(key), meta[key])
    refused = catalog.set_meta(scope, name, missing)
    if refused:
        reasons = catalog.refused_keys
        raise ProcessingError(f"{scope}:{name}: Rucio refused the metadata "
                              + ", ".join(f"{k} ({reasons.get(k, 'a different value is stored')})" for k in refused))
