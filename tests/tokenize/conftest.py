"""Shared by the tokenize command tests: the root CLI group with the tokenize commands added."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from vidtok_kit.cli import cli
from vidtok_kit.tokenize.commands import commands


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, fresh_cli: None):
    """Invoke the root group with the tokenize commands added (undone after the test)."""
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    for command in commands:
        cli.add_command(command)

    def invoke(*args: object) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args])

    return invoke
