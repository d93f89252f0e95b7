"""Token sources' error paths that need no identity provider: one line naming the source, never a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from cygno_dm.tokens import OidcAgent, TokenError, expiry, token_source


def test_an_oidc_agent_that_cannot_give_a_token_is_one_line_naming_the_account(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OIDC_SOCK", str(tmp_path / "no-agent.sock"))  # no agent listens there
    with pytest.raises(TokenError) as err:
        OidcAgent("nobody").token("storage.example.org")
    assert str(err.value).startswith("oidc-agent:nobody: ") and "\n" not in str(err.value)


def test_a_token_that_is_not_a_jwt_with_an_expiry_is_refused() -> None:
    with pytest.raises(TokenError, match="not a JWT with an `exp` claim"):
        expiry("opaque-token")
    with pytest.raises(TokenError, match="not a JWT"):
        expiry("a.eyJzdWIiOiJ4In0.c")  # {"sub": "x"}: no exp


def test_a_token_file_that_is_missing_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match=r"file:.*absent\.json: No such file or directory"):
        token_source(f"file:{tmp_path / 'absent.json'}")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "bad.json").chmod(0o600)
    with pytest.raises(TokenError, match="bad.json: not JSON"):
        token_source(f"file:{tmp_path / 'bad.json'}")
