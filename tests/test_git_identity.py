"""Whether git has an identity to commit with (commits gasworks makes use a stand-in otherwise)."""

from __future__ import annotations

from gasworks import git


def test_has_identity_needs_both_name_and_email(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "bare-identity"
    git.run(["init", "-q", str(repo)], tmp_path)
    assert not git.has_identity(repo)
    git.run(["config", "user.name", "Someone"], repo)
    assert not git.has_identity(repo)
    git.run(["config", "user.email", "someone@example.invalid"], repo)
    assert git.has_identity(repo)
