"""STREAMTUNE_CORS_ORIGINS: off by default, comma-separated or a JSON list, origins checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streamtune.config import Settings


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("", []),
        ("https://app.example", ["https://app.example"]),
        (" https://app.example , http://localhost:3000 ,", ["https://app.example", "http://localhost:3000"]),
        ('["https://app.example", "http://localhost:3000"]', ["https://app.example", "http://localhost:3000"]),
        ("*", ["*"]),
    ],
)
def test_origins_from_the_environment(monkeypatch, raw, origins):
    monkeypatch.setenv("STREAMTUNE_CORS_ORIGINS", raw)
    assert Settings(_env_file=None).cors_origins == origins


def test_off_by_default(monkeypatch):
    monkeypatch.delenv("STREAMTUNE_CORS_ORIGINS", raising=False)
    assert Settings(_env_file=None).cors_origins == []


@pytest.mark.parametrize(
    "raw", ["https://app.example/", "app.example", "https://app.example/path", '["https://a.example"']
)
def test_malformed_origins_are_refused(monkeypatch, raw):
    monkeypatch.setenv("STREAMTUNE_CORS_ORIGINS", raw)
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings(_env_file=None)
