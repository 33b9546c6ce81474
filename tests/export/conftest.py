"""Fixtures of the export tests: tiny model variants, perturbed checkpoints, exports built once per session.

The variants shrink ``recipes/tiny/kl_causal.toml`` further (two levels: 2x time, 2x space) so
that a whole export with parity runs in seconds. Their weights are perturbed before saving: VidTok
zero-initialises the second conv of every temporal block, and a random-init model would leave the
whole temporal path (and its streaming state) untested.

Tests ask for ``variant`` (every variant) or ``stream_variant`` (those exported with stream graphs);
``pytest_generate_tests`` parametrizes them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch

SMALL = ("model.channel_mult=[1,2]", "model.temporal_down_levels=[0]", "model.temporal_up_levels=[1]")
FSQ = ('model.regularizer={kind="fsq", levels=[4,4,4]}', "model.z_channels=3")


class Variant(NamedTuple):
    overrides: tuple[str, ...]
    #: min,opt,max TxHxW; min has T = 1 for causal models
    shapes: str
    #: latents per stream step, or None (no stream graphs)
    stream: int | None


VARIANTS: dict[str, Variant] = {
    "v1.0-kl": Variant(('model.version="v1.0"',), "1x8x8,5x16x16,9x16x24", 2),
    "v1.0-fsq": Variant(('model.version="v1.0"', *FSQ), "1x8x8,5x16x16,9x16x24", None),
    "v1.1-kl": Variant(('model.version="v1.1"',), "1x8x8,6x16x16,9x16x24", None),
    "v1.1-fsq": Variant(('model.version="v1.1"', *FSQ), "1x8x8,6x16x16,9x16x24", 3),
    "noncausal-kl": Variant(("model.causal=false",), "2x8x8,4x16x16,8x16x24", None),
    "noncausal-fsq": Variant(("model.causal=false", *FSQ), "2x8x8,4x16x16,8x16x24", None),
}


class Exported(NamedTuple):
    name: str
    directory: Path
    manifest: dict[str, Any]
    model: Any
    checkpoint: Path


def make_checkpoint(recipe_path: Path, overrides: tuple[str, ...], path: Path) -> tuple[Any, Path]:
    """A tiny model with every weight perturbed, saved as our checkpoint; returns (model, path)."""
    from vidtok_kit import build_model, load_recipe
    from vidtok_kit.convert.checkpoint import save_tokenizer

    recipe = load_recipe(recipe_path, overrides=(*SMALL, *overrides))
    gen = torch.Generator().manual_seed(7)
    model = build_model(recipe).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model, save_tokenizer(model, recipe, path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", list(VARIANTS))
    if "stream_variant" in metafunc.fixturenames:
        metafunc.parametrize("stream_variant", [name for name, v in VARIANTS.items() if v.stream])


@pytest.fixture
def cli(full_cli: object) -> object:
    """The root group with the subsystem and plugin commands, as ``main()`` assembles it."""
    return full_cli


@pytest.fixture(scope="session")
def small_overrides() -> tuple[str, ...]:
    """``--set`` overrides that turn the tiny recipe into the two-level test model."""
    return SMALL


@pytest.fixture(scope="session")
def variants() -> dict[str, Variant]:
    return VARIANTS


@pytest.fixture(scope="session")
def checkpoint_factory() -> Callable[[Path, tuple[str, ...], Path], tuple[Any, Path]]:
    return make_checkpoint


@pytest.fixture(scope="session")
def tiny_recipe(repo_root: Path) -> Path:
    return repo_root / "recipes" / "tiny" / "kl_causal.toml"


@pytest.fixture(scope="session")
def exported(tiny_recipe: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Exported]:
    """``exported(name)``: the variant exported (once per session) with parity, plus its PyTorch model."""
    pytest.importorskip("onnxruntime")
    cache: dict[str, Exported] = {}

    def get(name: str) -> Exported:
        if name not in cache:
            from vidtok_kit.export.pipeline import export_tokenizer

            variant = VARIANTS[name]
            root = tmp_path_factory.mktemp(name)
            model, ckpt = make_checkpoint(tiny_recipe, variant.overrides, root / "model.safetensors")
            manifest = export_tokenizer(
                tiny_recipe, root / "export", checkpoint=ckpt, shapes=variant.shapes, batch=(1, 1, 2),
                stream_chunk=variant.stream, overrides=(*SMALL, *variant.overrides),
            )
            cache[name] = Exported(name, root / "export", manifest, model, ckpt)
        return cache[name]

    return get
