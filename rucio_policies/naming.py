"""DID, scope and account name rules from the experiment profiles, each with a name and a message."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from cygno_dm.profile import ACCOUNT_RE, SCOPE_RE
from rucio_policies.experiments import Experiment, Registry

LOGGER = logging.getLogger(__name__)

RUCIO_NAME_LENGTH = 250  # the dids.name column of Rucio
FILE_TYPES = frozenset({"FILE", "F"})
COLLECTION_TYPES = frozenset({"DATASET", "CONTAINER", "D", "C"})


class NameRuleError(ValueError):
    """A name broke a rule; `rule` is the rule's id and the message says what it requires."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"rule {rule}: {message}")
        self.rule = rule


@dataclass(frozen=True)
class Rule:
    """A regex rule on a name: the name must (or must not) contain a match."""

    id: str
    text: str
    pattern: str
    must_match: bool

    def broken_by(self, value: str) -> bool:
        """Whether `value` breaks this rule (same semantics as JSON-schema 'pattern': re.search)."""
        return (re.search(self.pattern, value) is None) == self.must_match



GENERIC_RULES: tuple[Rule, ...] = (
    Rule("no-control-characters", "names contain no control characters", r"[\x00-\x1f\x7f-\x9f]", False),
    Rule("no-leading-slash", "names do not start with '/'", r"^/", False),
    Rule("no-empty-component", "names have no empty path component ('//' or a trailing '/')", r"//|/$", False),
    Rule("no-dot-component", "names have no '.' or '..' path component", r"(^|/)\.{1,2}(/|$)", False),
    Rule("allowed-characters", "names use only letters, digits and . - _ / and start with a letter or digit",
         r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", True),
)


def raw_file_rule(exp: Experiment) -> Rule:
    """Files in raw scopes follow the profile's naming (default `<TAG>/run<N><suffix>`)."""
    n = exp.profile.naming
    return Rule("raw-file-name", f"files in raw scopes of {exp.name} {n.describe()}", n.raw_name_re.pattern, True)


def raw_collection_rule(exp: Experiment) -> Rule:
    """Datasets and containers in raw scopes are `<TAG>` or `<TAG>/<label>[/<label>...]`, labels without dots."""
    tags = "|".join(re.escape(t) for t in exp.profile.naming.tags)
    return Rule("raw-collection-name",
                f"datasets and containers in raw scopes of {exp.name} are <TAG>[/<label>...] with TAG in "
                f"{'|'.join(exp.profile.naming.tags)} and labels of letters, digits, - and _",
                rf"^(?:{tags})(?:/[A-Za-z0-9][A-Za-z0-9_-]*)*$", True)


def max_length(exp: Experiment | None) -> int:
    """The longest DID name allowed in an experiment's scopes."""
    return min(exp.profile.naming.max_name_length, RUCIO_NAME_LENGTH) if exp else RUCIO_NAME_LENGTH


def check_did_name(registry: Registry, scope: str, name: str, did_type: str | None = None) -> None:
    """Raise NameRuleError if `scope:name` (of type FILE/DATASET/CONTAINER, or unknown) breaks a rule."""
    if not isinstance(name, str) or not name:
        raise NameRuleError("not-empty", "a DID name is a non-empty string")
    exp = registry.experiment_of_scope(scope)
    limit = max_length(exp)
    if len(name) > limit:
        raise NameRuleError("max-length", f"names in scope {scope} have at most {limit} characters, got {len(name)}")
    for rule in GENERIC_RULES:
        if rule.broken_by(name):
            raise NameRuleError(rule.id, rule.text)
    if exp is None or scope not in exp.raw_scopes:
        return
    kind = (did_type or "").upper()
    file_rule, coll_rule = raw_file_rule(exp), raw_collection_rule(exp)
    if kind in FILE_TYPES:
        candidates = [file_rule]
    elif kind in COLLECTION_TYPES:
        candidates = [coll_rule]
    else:
        candidates = [file_rule, coll_rule]
    if all(r.broken_by(name) for r in candidates):
        raise NameRuleError(candidates[0].id if len(candidates) == 1 else "raw-name",
                            " or ".join(r.text for r in candidates))


def check_scope_name(scope: str) -> None:
    """Raise NameRuleError if a scope name does not follow the profile's scope rule."""
    if not isinstance(scope, str) or not SCOPE_RE.fullmatch(scope):
        raise NameRuleError("scope-name", f"scope names match {SCOPE_RE.pattern}")


def check_account_name(account: str) -> None:
    """Raise NameRuleError if an account name does not follow the profile's account rule."""
    if not isinstance(account, str) or not ACCOUNT_RE.fullmatch(account):
        raise NameRuleError("account-name", f"account names match {ACCOUNT_RE.pattern}")
