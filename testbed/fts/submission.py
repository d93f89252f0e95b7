"""Validate an FTS bulk submission and turn it into job and file rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import clock, ids, states, urls

log = logging.getLogger(__name__)

VERIFY_CHECKSUM_VALUES = {"both": "both", "b": "both", "target": "target", "t": "target", "destination": "target",
                          "source": "source", "s": "source", "none": "none", "n": "none"}
CHECKSUM_ALGORITHMS = ("ADLER32", "MD5")
FILE_KEYS = ("sources", "destinations", "filesize", "checksum", "activity", "selection_strategy", "metadata",
             "staging_metadata", "archive_metadata", "source_tokens", "destination_tokens")


class SubmissionError(ValueError):
    """A submission that FTS would reject with 400 (the message names the field)."""


@dataclass(frozen=True)
class Identity:
    """Who submits: what whoami reports."""

    user_dn: str
    vo: str
    base_id: str = ids.BASE_ID

    @property
    def delegation_id(self) -> str:
        """Delegation id derived from the DN."""
        return ids.delegation_id(self.user_dn)


@dataclass(frozen=True)
class Defaults:
    """Server-side defaults for parameters a client leaves out."""

    retries: int = 0
    priority: int = 3


def normalise_verify_checksum(value: Any) -> str:
    """Map verify_checksum (string or boolean) to both|target|source|none."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "both"
    if isinstance(value, str) and value.lower() in VERIFY_CHECKSUM_VALUES:
        return VERIFY_CHECKSUM_VALUES[value.lower()]
    raise SubmissionError(f"params.verify_checksum: {value!r} is not one of both, target, source, none or a boolean")


def parse_checksum(value: Any, where: str) -> str | None:
    """Validate a file checksum: 'ALG:hex', 'ALG' alone, or bare hex (ADLER32)."""
    if value in (None, "", False):
        return None
    if not isinstance(value, str):
        raise SubmissionError(f"{where}.checksum: must be a string like 'ADLER32:1a2b3c4d'")
    alg, sep, hexval = value.partition(":")
    if not sep:
        if alg.upper() in CHECKSUM_ALGORITHMS:
            return alg.upper()
        alg, hexval = "ADLER32", value
    if alg.upper() not in CHECKSUM_ALGORITHMS:
        raise SubmissionError(f"{where}.checksum: algorithm {alg!r} is not supported (ADLER32, MD5)")
    try:
        int(hexval, 16)
    except ValueError:
        raise SubmissionError(f"{where}.checksum: {hexval!r} is not hexadecimal") from None
    return f"{alg.upper()}:{hexval.lower()}"


def _int_param(params: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SubmissionError(f"params.{key}: {value!r} is not an integer") from None


def _bool_param(params: dict[str, Any], key: str) -> bool:
    value = params.get(key)
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes", "y")
    return bool(value)


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise SubmissionError(f"{where}: {url!r} is not a URL (scheme://host/path)")
    return url


def _tokens(spec: dict[str, Any], key: str, count: int, where: str) -> list[str | None]:
    """Per-URL bearer tokens (Rucio sends one per source and one for the destination; null: none was issued)."""
    value = spec.get(key)
    if value is None:
        return [None] * count
    if not isinstance(value, list) or len(value) != count or not all(t is None or isinstance(t, str) for t in value):
        raise SubmissionError(f"{where}.{key}: must be a list of {count} token string(s) or nulls, one per URL")
    return [t or None for t in value]


def build_job(body: Any, identity: Identity, defaults: Defaults) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate a POST /jobs body and return (job row, file rows)."""
    if not isinstance(body, dict):
        raise SubmissionError("body: must be a JSON object with 'files' and 'params'")
    params = dict(body.get("params") or {})
    if not isinstance(params, dict):
        raise SubmissionError("params: must be a JSON object")
    for key, value in body.items():
        if key not in ("files", "params", "delete", "staging"):
            params.setdefault(key, value)
    files = body.get("files")
    if not files:
        if body.get("delete"):
            raise SubmissionError("delete: deletion jobs are not supported by this service")
        raise SubmissionError("files: no transfers given")
    if not isinstance(files, list):
        raise SubmissionError("files: must be a list")

    verify = normalise_verify_checksum(params.get("verify_checksum"))
    priority = _int_param(params, "priority", defaults.priority)
    if not 1 <= priority <= 5:
        raise SubmissionError(f"params.priority: {priority} is not between 1 and 5")
    bring_online = _int_param(params, "bring_online")
    archive_timeout = _int_param(params, "archive_timeout")
    retry = _int_param(params, "retry", 0)
    retries = defaults.retries if retry == 0 else max(retry, 0)
    multihop = _bool_param(params, "multihop")

    if params.get("id_generator") == "deterministic":
        sid = params.get("sid")
        if not sid:
            raise SubmissionError("params.sid: required when id_generator is 'deterministic'")
        job_id = ids.deterministic_job_id(identity.vo, str(sid), identity.base_id)
    else:
        job_id = ids.standard_job_id()

    staged = (bring_online or 0) > 0
    rows: list[dict[str, Any]] = []
    for index, spec in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(spec, dict):
            raise SubmissionError(f"{where}: must be an object with sources and destinations")
        sources = spec.get("sources")
        dests = spec.get("destinations")
        if not sources or not isinstance(sources, list):
            raise SubmissionError(f"{where}.sources: at least one source URL is required")
        if not dests or not isinstance(dests, list):
            raise SubmissionError(f"{where}.destinations: one destination URL is required")
        if len(sources) > 1 and len(dests) > 1:
            raise SubmissionError(f"{where}: several sources and several destinations at once are not supported")
        checksum = parse_checksum(spec.get("checksum"), where)
        filesize = spec.get("filesize")
        if filesize is not None:
            try:
                filesize = int(filesize)
            except (TypeError, ValueError):
                raise SubmissionError(f"{where}.filesize: {filesize!r} is not an integer") from None
        extra = {k: v for k, v in spec.items() if k not in FILE_KEYS}
        source_tokens = _tokens(spec, "source_tokens", len(sources), where)
        (dest_token,) = _tokens(spec, "destination_tokens", len(dests), where)[:1] or (None,)
        pairs = [(_check_url(s, f"{where}.sources"), _check_url(d, f"{where}.destinations"), source_tokens[i])
                 for i, s in enumerate(sources) for d in dests]
        for n, (src, dst, src_token) in enumerate(pairs):
            file_index = index
            if multihop:
                first = index == 0 and n == 0
            else:
                first = n == 0
            state = (states.STAGING if staged and not (multihop and index > 0) else states.SUBMITTED) \
                if first else states.NOT_USED
            rows.append({
                "job_id": job_id, "file_index": file_index, "file_state": state,
                "source_surl": src, "dest_surl": dst,
                "source_se": urls.storage_element(src), "dest_se": urls.storage_element(dst),
                "filesize": filesize, "user_filesize": filesize, "checksum": checksum,
                "activity": spec.get("activity") or "default",
                "selection_strategy": spec.get("selection_strategy"),
                "file_metadata": spec.get("metadata"),
                "staging_metadata": spec.get("staging_metadata"),
                "archive_metadata": spec.get("archive_metadata"),
                "extra": extra or None,
                "source_token": src_token, "dest_token": dest_token,  # kept out of every view and log
                "phase_epoch": clock.epoch(),
            })
    multi_replica = any(sum(1 for r in rows if r["file_index"] == r0["file_index"]) > 1 for r0 in rows)
    job_type = states.JOB_TYPE_MULTI_HOP if multihop else (
        states.JOB_TYPE_MULTIPLE_REPLICA if multi_replica else states.JOB_TYPE_REGULAR)
    job = {
        "job_id": job_id, "job_state": states.STAGING if staged else states.SUBMITTED, "job_type": job_type,
        "priority": priority, "vo_name": identity.vo, "user_dn": identity.user_dn,
        "cred_id": identity.delegation_id, "submit_time": clock.now_str(), "submit_epoch": clock.epoch(),
        "source_se": rows[0]["source_se"], "dest_se": rows[-1]["dest_se"],
        "verify_checksum": verify, "bring_online": bring_online, "archive_timeout": archive_timeout,
        "copy_pin_lifetime": _int_param(params, "copy_pin_lifetime"),
        "overwrite": _bool_param(params, "overwrite"),
        "retry": retries, "retry_delay": _int_param(params, "retry_delay", 0) or 0,
        "max_time_in_queue": _max_time_in_queue(params.get("max_time_in_queue")),
        "params": params, "job_metadata": params.get("job_metadata"),
    }
    return job, rows


def _max_time_in_queue(value: Any) -> int | None:
    """FTS max_time_in_queue in seconds (plain numbers are hours; s/m/h suffixes allowed)."""
    if value in (None, "", 0):
        return None
    text = str(value).strip().lower()
    unit = 3600
    if text[-1:] in ("s", "m", "h"):
        unit = {"s": 1, "m": 60, "h": 3600}[text[-1]]
        text = text[:-1]
    try:
        return int(float(text) * unit)
    except ValueError:
        raise SubmissionError(f"params.max_time_in_queue: {value!r} is not a duration") from None
