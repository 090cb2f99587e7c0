"""Recorded webhook payloads for the connector tests (copies of ../shared/fixtures/webhooks).

`signatures.json` lists every recorded payload with its expected signature; a test that takes a
`signed_fixture` argument runs once per payload.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"

# signatures.json names Meta payloads by object ("page", "instagram"); all go to /webhooks/meta.
_CONNECTOR_BY_PLATFORM = {"x": "x", "page": "meta", "instagram": "meta", "whatsapp": "whatsapp"}


@dataclass(frozen=True)
class SignedFixture:
    """One recorded payload with what signatures.json says about it."""

    name: str
    raw: bytes
    connector: str
    header: str
    signature: str
    secret: str
    size: int
    sha256: str


def _load_json(name: str) -> Any:
    return json.loads((FIXTURES_DIR / name).read_bytes())


def _signed_fixtures() -> list[SignedFixture]:
    recorded = _load_json("signatures.json")
    secrets = {"x": recorded["x_consumer_secret"]}
    return [
        SignedFixture(
            name=name,
            raw=(FIXTURES_DIR / name).read_bytes(),
            connector=_CONNECTOR_BY_PLATFORM[entry["platform"]],
            header=entry["header"],
            signature=entry["value"],
            secret=secrets.get(entry["platform"], recorded["meta_app_secret"]),
            size=entry["bytes"],
            sha256=entry["sha256_of_file"],
        )
        for name, entry in recorded["files"].items()
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "signed_fixture" in metafunc.fixturenames:
        fixtures = _signed_fixtures()
        metafunc.parametrize("signed_fixture", fixtures, ids=[f.name for f in fixtures])


@pytest.fixture
def load_payload() -> Callable[[str], dict[str, Any]]:
    """Decode a recorded payload; each call returns a fresh dict that a test may modify."""
    return _load_json


@pytest.fixture
def handshakes() -> dict[str, Any]:
    return _load_json("handshakes.json")
