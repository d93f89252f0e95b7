"""The package as Rucio loads it: version, every algorithm registered, schema/permission/metadata modules in use."""

from __future__ import annotations

import json

import pytest
from packaging.specifiers import SpecifierSet
from rucio.common.constants import POLICY_ALGORITHM_TYPES

import rucio_policies


def test_supported_version_matches_installed_rucio() -> None:
    from rucio.version import current_version

    assert current_version() in SpecifierSet(rucio_policies.SUPPORTED_VERSION)


def test_get_algorithms_uses_only_known_types() -> None:
    algorithms = rucio_policies.get_algorithms()
    assert set(algorithms) <= set(POLICY_ALGORITHM_TYPES)
    assert all(callable(fn) for group in algorithms.values() for fn in group.values())


@pytest.mark.parametrize(("kind", "name"), [
    (kind, name) for kind, group in rucio_policies.get_algorithms().items() for name in group])
def test_every_algorithm_is_registered_by_rucio(kind: str, name: str) -> None:
    from rucio.common.plugins import PolicyPackageAlgorithms
    from rucio.rse.translation import RSEDeterministicTranslation

    RSEDeterministicTranslation()  # triggers Rucio's loading of the policy package (errors there are swallowed)
    assert PolicyPackageAlgorithms._supports(kind, name), f"{kind}/{name} not registered"
    assert PolicyPackageAlgorithms._get_one_algorithm(kind, name) is rucio_policies.get_algorithms()[kind][name]


def test_lfn2pfn_identity_through_rucio_translation() -> None:
    from rucio.rse.translation import RSEDeterministicTranslation

    tr = RSEDeterministicTranslation("CNAF_USERDISK", {"lfn2pfn_algorithm": "psge_identity"}, {})
    assert tr.path("cygno-data", "LNGS/run114497.mid.gz") == "cygno-data/LNGS/run114497.mid.gz"
    default = RSEDeterministicTranslation("X", {"lfn2pfn_algorithm": "default"}, {})
    assert default.path("user.alice", "a/b.h5") == "user.alice/a/b.h5"  # configured default, no user/ split


def test_pfn2lfn_inverts_identity() -> None:
    from rucio.rse.translation import RSEDeterministicScopeTranslation

    parser = RSEDeterministicScopeTranslation().parser
    assert parser({"path": "/cygno-data/LNGS/", "name": "run01234.mid.gz"}) == ("LNGS/run01234.mid.gz", "cygno-data")


@pytest.mark.parametrize(("did", "expected"), [
    ("cygno-data:LNGS/run01234.mid.gz", ("cygno-data", "LNGS/run01234.mid.gz")),
    ("cygno-data/LNGS/run01234.mid.gz", ("cygno-data", "LNGS/run01234.mid.gz")),
    ("/cygno/cygno-data/LNGS/run01234.mid.gz", ("cygno-data", "LNGS/run01234.mid.gz")),
    ("user.alice/plots/a.png", ("user.alice", "plots/a.png")),
])
def test_extract_scope_through_rucio(did: str, expected: tuple[str, str]) -> None:
    from rucio.common.utils import extract_scope

    assert tuple(extract_scope(did)) == expected


@pytest.mark.parametrize("did", ["", "a:b:c", ":name", "scope:", "nowhere/file", "plainname"])
def test_extract_scope_rejects_unknown_forms(did: str) -> None:
    from rucio.common.exception import RucioException
    from rucio.common.utils import extract_scope

    with pytest.raises(RucioException):
        extract_scope(did)


def test_tape_plugin_through_rucio() -> None:
    from rucio.common.types import InternalScope
    from rucio.transfertool.fts3_plugins import FTS3TapeMetadataPlugin

    plugin = FTS3TapeMetadataPlugin("psge_collocation")
    hints = plugin.hints({"scope": InternalScope("cygno-data"), "name": "LNGS/run114497.mid.gz", "dst_type": "TAPE"})
    assert hints == {"archive_metadata": {"collocation_hints": {
        "0": "cygno", "1": "raw", "2": "LNGS/run114400-114499"}}}
    assert len(json.dumps(hints)) < 4096


def test_rucio_uses_this_schema_permission_and_metadata_modules() -> None:
    import rucio.common.schema as schema
    import rucio.core.permission as permission
    from rucio.core import did_meta_plugins
    from rucio.core.did_meta_plugins.did_column_meta import DidColumnMeta

    assert schema.schema_modules["def"].__name__ == "rucio_policies.schema"
    assert permission.permission_modules["def"].__name__ == "rucio_policies.permission"
    names = [type(p).__name__ for p in did_meta_plugins.METADATA_PLUGIN_MODULES]
    assert names == ["DidColumnMeta", "RunMetadataPlugin"]
    assert not DidColumnMeta().manages_key("run_number")  # routed to the run-metadata plugin
    assert DidColumnMeta().manages_key("events")


def test_server_config_names_registered_things() -> None:
    cfg = rucio_policies.server_config()
    algorithms = rucio_policies.get_algorithms()
    assert cfg["policy"]["package"] == "rucio_policies"
    assert cfg["policy"]["lfn2pfn_algorithm_default"] in algorithms["lfn2pfn"]
    assert cfg["common"]["extract_scope"] in algorithms["scope"]
    assert cfg["transfers"]["fts3tape_metadata_plugins"] in algorithms["fts3_tape_metadata_plugins"]
    module, _, cls = cfg["metadata"]["plugins"].rpartition(".")
    assert cls == "RunMetadataPlugin" and module == "rucio_policies.metadata"


def test_rucio_fts3_transfertool_loads_the_tape_plugin() -> None:
    from rucio.transfertool.fts3 import FTS3Transfertool

    tool = FTS3Transfertool(external_host="http://127.0.0.1:1")
    hints = [p.hints({"scope": "cygno-data", "name": "MAN/run00042.mid.gz"}) for p in tool.tape_metadata_plugins]
    assert hints == [{"archive_metadata": {"collocation_hints": {"0": "cygno", "1": "raw", "2": "MAN/run00000-00099"}}}]


def test_permission_matrix_lists_every_action() -> None:
    """docs/permissions.md names every action of Rucio's generic permission table and of this policy."""
    import inspect
    import re
    from pathlib import Path

    from rucio.core.permission import generic

    from rucio_policies.permission import HANDLERS

    table = set(re.findall(r"'([a-z_0-9]+)': perm_", inspect.getsource(generic.has_permission)))
    assert len(table) > 80  # the table was found
    doc = (Path(__file__).parents[2] / "docs" / "permissions.md").read_text()
    named = set(re.findall(r"`([a-z_0-9]+)`", doc))
    named |= {f"config_{m}" for m in ("sections", "add_section", "has_section", "options", "has_option", "get",
                                      "items", "set", "remove_section", "remove_option")} if "`config_*`" in doc \
        else set()
    assert sorted(table - named) == []
    assert sorted(set(HANDLERS) - named) == []
