"""Pseudonymous user ids and forget requests: keyed, stable, never the raw id on disk."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from streamtune.cli import main
from streamtune.config import Settings
from streamtune.errors import ConfigurationError
from streamtune.privacy import ForgetRequests, Pseudonymiser, user_tag
from streamtune.privacy.pseudonyms import KEY_FILE

KEY = "k" * 32


def test_pseudonyms_are_keyed_hmacs_not_plain_hashes(tmp_path):
    import hashlib
    import hmac

    pseudonymiser = Pseudonymiser.for_store(KEY, tmp_path)
    pseudonym = pseudonymiser.pseudonym("alice@example.com")
    assert pseudonym == hmac.new(KEY.encode(), b"alice@example.com", hashlib.sha256).hexdigest()
    assert pseudonym != hashlib.sha256(b"alice@example.com").hexdigest()  # not guessable without the key
    assert Pseudonymiser.for_store("another key of 16+ chars", tmp_path).pseudonym("alice@example.com") != pseudonym
    assert not (tmp_path / KEY_FILE).exists()  # a configured key is never written anywhere
    assert "k" * 16 not in repr(pseudonymiser)
    with pytest.raises(ConfigurationError):
        Pseudonymiser(b"short")
    with pytest.raises(ValueError, match="PSEUDONYMISE_KEY"):
        Settings(_env_file=None, pseudonymise_key="short")


def test_remembered_pseudonyms_equal_fresh_ones_and_memory_stays_bounded():
    import hashlib
    import hmac

    pseudonymiser = Pseudonymiser(KEY.encode(), remembered=3)
    users = [f"user-{n}" for n in range(7)] * 2  # each user twice, more users than remembered
    for user in users:
        assert pseudonymiser.pseudonym(user) == hmac.new(KEY.encode(), user.encode(), hashlib.sha256).hexdigest()
        assert pseudonymiser._remembered.cache_info().currsize <= 3
    assert "user-" not in repr(pseudonymiser)


def test_tags_are_stable_64_bit_and_zero_means_no_user():
    pseudonymiser = Pseudonymiser(KEY.encode())
    tags = {user_tag(pseudonymiser.pseudonym(f"user-{i}")) for i in range(10_000)}
    assert len(tags) == 10_000 and 0 not in tags
    assert all(-(2**63) <= tag < 2**63 for tag in tags)
    assert user_tag(None) == 0


def _pseudonym_in_child(root: str, queue) -> None:
    queue.put(Pseudonymiser.for_store(None, Path(root)).pseudonym("bob"))


def test_without_a_key_one_is_generated_once_kept_private_and_shared(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_pseudonym_in_child, args=(str(tmp_path), queue)) for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    pseudonyms = {queue.get(timeout=5) for _ in children}
    assert len(pseudonyms) == 1  # processes racing to create the key agree on one
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes().strip()) == 64
    assert Pseudonymiser.for_store(None, tmp_path).pseudonym("bob") == pseudonyms.pop()  # survives restarts
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary debris


def test_forget_requests_hold_pseudonyms_only(tmp_path):
    requests = ForgetRequests(tmp_path)
    assert requests.pseudonyms() == set()
    pseudonym = Pseudonymiser(KEY.encode()).pseudonym("carol")
    assert requests.request(pseudonym) is True
    assert requests.request(pseudonym) is False  # idempotent
    (requests.directory / "README").write_text("not a request")
    assert requests.pseudonyms() == {pseudonym}
    assert json.loads((requests.directory / pseudonym).read_text())["pseudonym"] == pseudonym
    with pytest.raises(ValueError):
        requests.request("../../etc/passwd")


def test_forget_command_records_the_pseudonym_and_never_the_user_id(tmp_path, monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith("STREAMTUNE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STREAMTUNE_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMTUNE_PSEUDONYMISE_KEY", KEY)
    monkeypatch.chdir(tmp_path)  # no streamtune.env from the working directory
    user_id = "dave@example.com"
    assert main(["forget", user_id]) == 0
    expected = Pseudonymiser(KEY.encode()).pseudonym(user_id)
    assert ForgetRequests(tmp_path).pseudonyms() == {expected}
    printed = capsys.readouterr().out
    assert expected in printed and user_id not in printed
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert user_id.encode() not in path.read_bytes()
