"""Session-wide test setup: the vidtok-kit contract plugin, seeding, and where the shared spec lives."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytest_plugins = ["vidtok_kit.testing", "pytester"]

#: repository root (the parent of tests/)
REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread unless VIDTOK_KIT_TEST_THREADS says otherwise.

    Test tensors are tiny, so thread fan-out costs more than it saves; and on a shared 2-core box
    OpenMP spin-waiting made a tiny-model forward 30x slower with 2 threads (2 s vs 0.06 s, measured).
    """
    torch.set_num_threads(int(os.environ.get("VIDTOK_KIT_TEST_THREADS", "1")))
    # Tokenizers compile step shapes that come back by default (``compile="auto"``); a real
    # Inductor compile costs tens of seconds, so tests run eagerly unless they ask for it
    # (tests/model/test_inference.py compiles one tiny model on purpose). CLI subprocesses
    # inherit this.
    os.environ.setdefault("VIDTOK_KIT_COMPILE", "off")
    # No test downloads weights: missing VGG16 / LPIPS / I3D files are the offline one-line error,
    # and nothing is cached in the user's home (tests/test_weights.py serves its own files).
    os.environ.setdefault("VIDTOK_KIT_OFFLINE", "1")
    os.environ.setdefault("VIDTOK_KIT_CACHE", tempfile.mkdtemp(prefix="vidtok_kit_cache_"))


@pytest.fixture(autouse=True)
def _train_logger_restored() -> Iterator[None]:
    """An in-process ``train`` command sets up the training logger (own handler, no propagation);
    later tests must still see its records through pytest's capture."""
    logger = logging.getLogger("vidtok_kit.train")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """Every test starts from the same RNG state, so random-init models and inputs are reproducible."""
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_spec() -> Path:
    """``../shared/spec`` beside the repository (reference description and checkpoint layouts)."""
    spec = REPO_ROOT.parent / "shared" / "spec"
    if not (spec / "checkpoint-layouts").is_dir():
        pytest.skip(f"shared spec not found at {spec} (checkpoint layouts live outside the repository)")
    return spec


@pytest.fixture
def fresh_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget the CLI's per-process plugin state and the default registry for one test.

    The CLI builds its registry once per process (honouring ``--disable-plugin``) and installs it as
    the default; tests invoke it many times in one process, so each gets a clean slate.
    """
    from vidtok_kit import cli, pluginmanager

    monkeypatch.setattr(cli, "_STATE", {})
    monkeypatch.setattr(pluginmanager, "_DEFAULT", None)
    yield


@pytest.fixture
def full_cli(monkeypatch: pytest.MonkeyPatch, fresh_cli: None) -> Any:
    """The root group with subsystem and plugin commands added, as ``main()`` does (undone afterwards)."""
    from vidtok_kit import cli as cli_module

    monkeypatch.setattr(cli_module.cli, "commands", dict(cli_module.cli.commands))
    cli_module._add_subsystem_commands()
    cli_module._add_plugin_commands()
    return cli_module.cli


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``fake_distribution(dist, version, ep_name, module, source)``: an "installed" plugin distribution.

    Writes ``<dist>-<version>.dist-info`` (METADATA + entry_points.txt in the ``vidtok_kit`` group) and
    ``<module>.py`` into a folder put on ``sys.path``, so ``importlib.metadata`` finds it exactly as
    it finds an installed wheel. The module is forgotten again after the test.
    """
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("VIDTOK_KIT_DISABLED_PLUGINS", raising=False)
    monkeypatch.delenv("VIDTOK_KIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def install(dist: str, version: str, ep_name: str, module: str, source: str) -> Path:
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[vidtok_kit]\n{ep_name} = {module}\n")
        (root / f"{module}.py").write_text(source)
        request.addfinalizer(lambda: sys.modules.pop(module, None))
        return info

    return install
