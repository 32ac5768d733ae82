"""Shared fixtures: the repository's default voice and one engine for the
whole session (loading a voice takes about a second)."""

from __future__ import annotations

import os
import pathlib

import pytest

import voxide

ROOT = pathlib.Path(__file__).resolve().parents[2]
VOICE = pathlib.Path(os.environ.get("VOXIDE_TEST_VOICE", ROOT / "voices" / "en_US-joe-medium.onnx"))
CLI = pathlib.Path(os.environ.get("VOXIDE_BIN", ROOT / "target" / "release" / "voxide"))


@pytest.fixture(scope="session")
def voice() -> pathlib.Path:
    assert VOICE.exists(), f"test voice missing: {VOICE}"
    return VOICE


@pytest.fixture(scope="session")
def engine(voice: pathlib.Path) -> voxide.Engine:
    return voxide.Engine(voice, max_concurrent=2, device="cpu")


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    assert CLI.exists(), f"voxide binary missing (cargo build --release): {CLI}"
    return CLI
