"""The worked-example third-party plugin (plugins/vidtok-kit-rfsq) end to end.

It is pip-installed (from a copy, into a temporary target directory, so the shared environment
and the source tree stay untouched), then found through the ``vidtok_kit`` entry-point group,
never imported by path: listed by ``vidtok-kit plugins``, used from a recipe by its name, trained
for a few steps, and its own test suite (the shared contract of ``vidtok_kit.testing``) passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from vidtok_kit.errors import RecipeError
from vidtok_kit.pluginmanager import load_plugins
from vidtok_kit.recipe import load_recipe, recipe_from_dict

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugins" / "vidtok-kit-rfsq"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed plugin (``pip install --target``), for sys.path / PYTHONPATH."""
    root = tmp_path_factory.mktemp("rfsq")
    source = root / "src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


@pytest.fixture
def registry(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(site))
    yield load_plugins(autoload=True)[1]
    for name in [m for m in sys.modules if m.startswith("vidtok_kit_rfsq")]:
        del sys.modules[name]


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_found_through_its_entry_point(registry: Any, site: Path) -> None:
    cls = registry.get("regularizer", "rfsq")
    origin = registry.origin("regularizer", "rfsq")
    assert (origin.plugin, origin.distribution, origin.version) == ("rfsq", "vidtok-kit-rfsq", "0.1.0")
    assert Path(sys.modules[cls.__module__].__file__).is_relative_to(site)  # the installed copy


def test_listed_by_the_cli(site: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vidtok_kit", "plugins", "--json"], capture_output=True, text=True, env=_env(site), timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {row["plugin"]: row for row in json.loads(proc.stdout)}
    assert rows["rfsq"]["distribution"] == "vidtok-kit-rfsq" and rows["rfsq"]["broken"] is None
    assert rows["rfsq"]["components"] == {"regularizer": ["rfsq"]}


def test_unknown_option_names_the_plugin(registry: Any) -> None:
    data = {
        "model": {
            "z_channels": 3,
            "spatial_sampler": {"kind": "conv2d"},
            "temporal_sampler": {"kind": "alphablender"},
            "block": {"kind": "res2plus1d"},
            "fusion": {"kind": "res3d"},
            "regularizer": {"kind": "rfsq", "levels": [4, 4, 4], "num_stages": 2},
        }
    }
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data, registry=registry, source="x.toml")
    msg = str(err.value)
    assert "\n" not in msg
    assert "num_stages" in msg and "'rfsq'" in msg and "vidtok-kit-rfsq" in msg and "num_quantizers" in msg


def test_trains_from_its_recipe(registry: Any) -> None:
    from vidtok_kit.io import read_video, sample_videos
    from vidtok_kit.model.autoencoder import build_model

    recipe = load_recipe(PLUGIN / "recipes" / "tiny_rfsq.toml", registry=registry)
    assert recipe.model.regularizer.kind == "rfsq"
    model = build_model(recipe, registry=registry).train()
    video = read_video(sample_videos()[2], fps=8, size=32)[0]  # carphone: small and fast to decode
    x = video[:, :9].unsqueeze(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(4):
        out = model(x, step=step)
        loss = (out.recon - x).abs().mean() + out.reg.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
    model.eval()
    with torch.no_grad():
        enc = model.encode(x)
        assert enc.indices.dtype == torch.int16 and int(enc.indices.max()) < 4096
        torch.testing.assert_close(model.decode_indices(enc.indices), model.decode(enc.latent))


def test_passes_its_own_suite_with_the_shared_contract(site: Path, tmp_path: Path) -> None:
    """The plugin's tests (``RegularizerContract`` from ``vidtok_kit.testing``) run as its author would."""
    tests = tmp_path / "tests"
    shutil.copytree(PLUGIN / "tests", tests)
    shutil.copy(PLUGIN / "pyproject.toml", tmp_path / "pyproject.toml")  # its own pytest settings
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(site),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
