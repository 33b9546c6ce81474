"""Contract tests every vidtok-kit component must pass, as pytest mixins, plus tiny fixtures.

This module is an opt-in pytest plugin (it is deliberately *not* a ``pytest11`` entry point, so
installing vidtok-kit does not import torch into every pytest session). A plugin author writes::

    # conftest.py (not a test module: pytest must import this plugin before the tests import it,
    # or it cannot rewrite the mixins' asserts and warns PytestAssertRewriteWarning)
    pytest_plugins = ["vidtok_kit.testing"]

    # test_noisy_fsq.py
    from vidtok_kit.testing import RegularizerContract

    class TestNoisyFSQ(RegularizerContract):
        component = NoisyFSQ

        def make_config(self):
            return NoisyFSQ.Config(levels=(4, 4, 4))

and gets the same checks vidtok-kit runs on every registered component (``tests/components``):
output shapes, finite outputs, a gradient reaching every parameter, determinism in eval mode,
``torch.export.export``, and, in causal time modes, that no output looks at future frames beyond
what the mode allows. Mode-dependent checks run for all three :class:`TimeMode` values.

Why parameters are perturbed before gradient checks: VidTok zero-initialises the second conv of
every temporal residual block, so at init the first conv receives exactly zero gradient and a
"every parameter gets a gradient" check would fail (or pass vacuously) for the wrong reason.

``torch.export.export(module, (x,))`` with the default ``strict=False`` works for every built-in,
including regularizers returning :class:`~vidtok_kit.interfaces.RegOut` with ``indices=None`` and a
``logs`` dict (NamedTuple, None and dict are all pytree nodes; ``strict=True`` works too).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree  # torch has no public pytree module yet

from vidtok_kit.model.layers import TimeMode

__all__ = [
    "CONTRACTS",
    "TINY_RECIPE",
    "ComponentContract",
    "FusionBlockContract",
    "RegularizerContract",
    "SpatialSamplerContract",
    "TemporalSamplerContract",
    "assert_causal",
    "assert_exportable",
    "assert_gradients_reach_every_parameter",
    "perturb_parameters",
    "tiny_model",
    "tiny_recipe",
    "write_audio_only",
    "write_truncated_video",
    "write_video_without_frames",
]

#: a CPU-seconds VidTok-shaped model (the same as ``recipes/tiny/kl_causal.toml``), as a recipe dict
TINY_RECIPE: dict[str, Any] = {
    "schema": 1,
    "name": "tiny_kl_causal",
    "model": {
        "base_channels": 8,
        "channel_mult": [1, 2, 2],
        "num_res_blocks": 1,
        "z_channels": 4,
        "causal": True,
        "version": "v1.0",
        "temporal_down_levels": [1, 0],
        "temporal_up_levels": [1, 2],
        "spatial_sampler": {"kind": "conv2d"},
        "temporal_sampler": {"kind": "alphablender"},
        "block": {"kind": "res2plus1d"},
        "fusion": {"kind": "res3d"},
        "regularizer": {"kind": "kl"},
    },
    "train": {"steps": 20, "batch_size": 1, "num_frames": 9, "resolution": 32, "precision": "fp32"},
}

_MODES = pytest.mark.parametrize("time_mode", list(TimeMode), ids=[m.value for m in TimeMode])


# -- helpers (usable on their own) ---------------------------------------------------------------


def tiny_recipe(registry: Any = None, **model: Any) -> Any:
    """The tiny recipe with ``model`` keys replaced (e.g. ``causal=False``, ``regularizer={...}``)."""
    from vidtok_kit.pluginmanager import default_registry
    from vidtok_kit.recipe import recipe_from_dict

    data = copy.deepcopy(TINY_RECIPE)
    data["model"].update(model)
    return recipe_from_dict(data, registry=registry or default_registry(), source="<tiny recipe>")


def tiny_model(registry: Any = None, **model: Any) -> Any:
    """A randomly initialised tiny tokenizer in eval mode (see :func:`tiny_recipe`)."""
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.pluginmanager import default_registry

    registry = registry or default_registry()
    return build_model(tiny_recipe(registry, **model).model, registry=registry).eval()


def write_truncated_video(path: str | Path, frames: Tensor, *, keep: float = 1 / 3, fps: int = 25) -> Path:
    """An mp4 of ``frames`` ((C, T, H, W) in [-1, 1], even H and W) cut after ``keep`` of its bytes.

    Its index (moov) is written first, so the file opens and probes fine and decoding just ends
    part-way: the damage a half-copied download leaves, which a reader can only notice while
    decoding (an index-at-the-end mp4 cut short does not even open). For bad-input tests.
    """
    import av

    # the writer's own frame conversion and encoder choice
    from vidtok_kit.io.video import _pick_encoder, _to_uint8_frames

    path = Path(path)
    rgb = _to_uint8_frames(frames)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream: Any = out.add_stream(_pick_encoder(path, None), rate=fps)  # a video encoder: a video stream
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "yuv420p"
        for image in rgb:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_audio_only(path: str | Path) -> Path:
    """A media file with an audio stream and no video stream (a voice memo named ``.mp4``)."""
    import av
    import numpy as np

    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_video_without_frames(path: str | Path) -> Path:
    """A video file whose video stream has a header and no frames; give it an ``.avi`` suffix (AVI
    keeps the stream header without packets, MP4 would drop the track)."""
    import av

    path = Path(path)
    out = av.open(str(path), "w")
    stream = out.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    out.start_encoding()
    out.close()
    return path


@torch.no_grad()
def perturb_parameters(module: nn.Module, scale: float = 0.1, seed: int = 0) -> nn.Module:
    """Add N(0, scale) noise to every parameter, so zero-initialised convs stop hiding their inputs."""
    gen = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module


def assert_gradients_reach_every_parameter(module: nn.Module, out: Any, *, extra: Tensor | None = None) -> None:
    """Backpropagate a random projection of ``out`` and require a finite, non-zero grad everywhere.

    A random projection (not ``out.sum()``) avoids gradients that cancel by symmetry.
    """
    tensors = [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, Tensor)]
    gen = torch.Generator().manual_seed(1)
    loss = sum((t.float() * torch.randn(t.shape, generator=gen)).sum() for t in tensors if t.is_floating_point())
    if extra is not None:
        loss = loss + extra
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"parameter {name!r} received no gradient"
        assert torch.isfinite(p.grad).all(), f"parameter {name!r} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"parameter {name!r} has an all-zero gradient"


def assert_exportable(module: nn.Module, x: Tensor) -> Any:
    """``torch.export.export(module, (x,))`` succeeds and the exported program reproduces eager."""
    module = module.eval()
    program = torch.export.export(module, (x,))
    with torch.no_grad():
        want, got = module(x), program.module()(x)
    flat_want, _ = pytree.tree_flatten(want)
    flat_got, _ = pytree.tree_flatten(got)
    assert len(flat_want) == len(flat_got)
    for a, b in zip(flat_want, flat_got):
        if isinstance(a, Tensor):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    return program


def assert_causal(fn: Callable[[Tensor], Tensor], x: Tensor, last_input: Callable[[int], int]) -> None:
    """Output frame ``t`` of ``fn`` (dim 2) may only depend on input frames ``<= last_input(t)``.

    Every input frame is perturbed in turn; all variants run as one batch (components treat batch
    items independently), so the check costs one call.
    """
    frames = x.shape[2]
    variants = [x]
    for k in range(frames):
        y = x.clone()
        y[:, :, k] += 1.0 + torch.rand_like(y[:, :, k])
        variants.append(y)
    with torch.no_grad():
        out = fn(torch.cat(variants))
    b = x.shape[0]
    base = out[:b]
    for k in range(frames):
        changed = out[b * (k + 1) : b * (k + 2)]
        for t in range(out.shape[2]):
            if last_input(t) < k:
                assert torch.allclose(changed[:, :, t], base[:, :, t], atol=1e-6, rtol=0), (
                    f"output frame {t} changed when input frame {k} did (allowed: inputs <= {last_input(t)})"
                )


# -- contract mixins ------------------------------------------------------------------------------


class ComponentContract:
    """Base of the mixins: a test class sets ``component`` and may override :meth:`make_config`."""

    component: ClassVar[type]

    def make_config(self) -> Any:
        """The component's config for the checks; the default config unless overridden."""
        return self.component.Config()

    def test_declares_name_and_config(self) -> None:
        """A lower_snake ``name`` (the recipe kind) and a frozen, hashable attrs ``Config``."""
        assert re.fullmatch(r"[a-z][a-z0-9_]*", self.component.name), self.component.name
        assert attrs.has(self.component.Config), "Config must be an attrs class"
        config = self.make_config()
        assert isinstance(config, self.component.Config)
        hash(config)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            config._contract_probe = 1


class RegularizerContract(ComponentContract):
    """Checks for :class:`~vidtok_kit.interfaces.Regularizer` implementations."""

    #: latent channels; None = ``len(config.levels)`` when the config has levels, else 4
    z_channels: ClassVar[int | None] = None

    def latent_channels(self, config: Any) -> int:
        if self.z_channels is not None:
            return self.z_channels
        levels = getattr(config, "levels", None)
        return len(levels) if levels is not None else 4

    def make_regularizer(self) -> Any:
        config = self.make_config()
        return self.component(config, z_channels=self.latent_channels(config))

    def make_input(self, reg: Any, *, batch: int = 2, frames: int = 3, size: int = 4) -> Tensor:
        channels = self.component.encoder_channels(reg.config, reg.z_channels)
        gen = torch.Generator().manual_seed(0)
        return torch.randn(batch, channels, frames, size, size, generator=gen) * 2

    def test_output_shapes(self) -> None:
        reg = self.make_regularizer().eval()
        h = self.make_input(reg)
        out = reg(h)
        b, _, t, hh, ww = h.shape
        assert out.latent.shape == (b, reg.z_channels, t, hh, ww)
        assert out.latent.is_floating_point() and torch.isfinite(out.latent).all()
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        assert isinstance(out.logs, dict) and all(isinstance(v, Tensor) and not v.requires_grad for v in out.logs.values())
        if self.component.discrete:
            assert out.indices is not None and out.indices.shape == (b, t, hh, ww)
            assert not out.indices.is_floating_point() and out.indices.dtype == reg.index_dtype
            assert 0 <= int(out.indices.min()) and int(out.indices.max()) < reg.codebook_size
        else:
            assert out.indices is None

    def test_no_nan_on_extreme_inputs(self) -> None:
        reg = self.make_regularizer().eval()
        h = self.make_input(reg) * 1e3
        out = reg(h)
        assert torch.isfinite(out.latent).all() and torch.isfinite(out.loss)

    def test_latent_is_fp32_for_half_inputs(self) -> None:
        reg = self.make_regularizer().eval()
        assert reg(self.make_input(reg).bfloat16()).latent.dtype == torch.float32

    def test_gradients(self) -> None:
        reg = perturb_parameters(self.make_regularizer().train())
        h = self.make_input(reg).requires_grad_(True)
        out = reg(h, sample=True)
        assert_gradients_reach_every_parameter(reg, out.latent, extra=out.loss)
        assert h.grad is not None and torch.isfinite(h.grad).all()
        assert h.grad.abs().sum() > 0, "no gradient reaches the encoder (straight-through estimator missing?)"

    def test_eval_determinism(self) -> None:
        reg = self.make_regularizer().eval()
        h = self.make_input(reg)
        a, b = reg(h), reg(h)
        assert torch.equal(a.latent, b.latent) and torch.equal(a.loss, b.loss)
        if self.component.discrete:
            assert torch.equal(a.indices, b.indices)

    def test_indices_round_trip(self) -> None:
        if not self.component.discrete:
            pytest.skip("continuous regularizer: no indices")
        reg = self.make_regularizer().eval()
        out = reg(self.make_input(reg))
        assert reg.codebook_size > 0
        torch.testing.assert_close(reg.indices_to_latent(out.indices), out.latent, rtol=0, atol=1e-6)

    def test_torch_export(self) -> None:
        reg = self.make_regularizer()
        assert_exportable(reg, self.make_input(reg))


class _SamplerContract(ComponentContract):
    channels: ClassVar[int] = 4

    def make_down(self, mode: TimeMode) -> nn.Module:
        return self.component.Down(self.make_config(), channels=self.channels, mode=mode)

    def make_up(self, mode: TimeMode) -> nn.Module:
        return self.component.Up(self.make_config(), channels=self.channels, mode=mode)

    def video(self, frames: int, size: int = 8, batch: int = 1) -> Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.randn(batch, self.channels, frames, size, size, generator=gen)

    def down_input(self) -> Tensor:
        return self.video(8)

    def up_input(self) -> Tensor:
        return self.video(4)

    @_MODES
    def test_gradients(self, time_mode: TimeMode) -> None:
        for make, x in ((self.make_down, self.down_input()), (self.make_up, self.up_input())):
            module = perturb_parameters(make(time_mode).train())
            x = x.requires_grad_(True)
            assert_gradients_reach_every_parameter(module, module(x))
            assert x.grad is not None and x.grad.abs().sum() > 0

    @_MODES
    def test_eval_determinism(self, time_mode: TimeMode) -> None:
        for module, x in ((self.make_down(time_mode), self.down_input()), (self.make_up(time_mode), self.up_input())):
            module.eval()
            assert torch.equal(module(x), module(x))

    @_MODES
    def test_torch_export(self, time_mode: TimeMode) -> None:
        assert_exportable(self.make_down(time_mode), self.down_input())
        assert_exportable(self.make_up(time_mode), self.up_input())


class SpatialSamplerContract(_SamplerContract):
    """Checks for :class:`~vidtok_kit.interfaces.SpatialSamplerPair` implementations."""

    @_MODES
    def test_shapes(self, time_mode: TimeMode) -> None:
        x = self.down_input()
        with torch.no_grad():
            down = self.make_down(time_mode).eval()(x)
            up = self.make_up(time_mode).eval()(x)
        s = self.component.out_size(x.shape[3])
        assert down.shape == (*x.shape[:3], s, s)
        assert up.shape == (*x.shape[:3], x.shape[3] * self.component.factor, x.shape[4] * self.component.factor)
        assert torch.isfinite(down).all() and torch.isfinite(up).all()

    @_MODES
    def test_causal_in_time(self, time_mode: TimeMode) -> None:
        if not time_mode.causal:
            pytest.skip("non-causal mode")
        for module in (perturb_parameters(self.make_down(time_mode)), perturb_parameters(self.make_up(time_mode))):
            assert_causal(module.eval(), self.video(5), lambda t: t)


class TemporalSamplerContract(_SamplerContract):
    """Checks for :class:`~vidtok_kit.interfaces.TemporalSamplerPair` implementations.

    A ``joint`` sampler (one strided 3-D conv for time and space) must also halve / double H and W.

    Causal down: output frame ``j`` sees inputs ``<= 2j + 1``. Causal up: output ``t`` sees inputs
    ``<= t // 2`` in v1.0 (strictly causal) and ``<= (t + 1) // 2`` in v1.1, whose linear
    interpolation looks one step ahead (as VidTok v1.1 does).
    """

    def make_up(self, mode: TimeMode, lead_frames: int = 1) -> nn.Module:
        return self.component.Up(self.make_config(), channels=self.channels, mode=mode, lead_frames=lead_frames)

    @_MODES
    def test_shapes(self, time_mode: TimeMode) -> None:
        with torch.no_grad():
            down = self.make_down(time_mode).eval()(self.down_input())
            up = self.make_up(time_mode).eval()(self.up_input())
        x, y = self.down_input(), self.up_input()
        f = self.component.factor
        s = f if getattr(self.component, "joint", False) else 1  # joint samplers resample H, W too
        assert down.shape == (*x.shape[:2], self.component.out_frames(x.shape[2]), x.shape[3] // s, x.shape[4] // s)
        assert up.shape == (*y.shape[:2], y.shape[2] * f, y.shape[3] * s, y.shape[4] * s)
        assert torch.isfinite(down).all() and torch.isfinite(up).all()

    @_MODES
    def test_causal_in_time(self, time_mode: TimeMode) -> None:
        if not time_mode.causal:
            pytest.skip("non-causal mode")
        down = perturb_parameters(self.make_down(time_mode)).eval()
        assert_causal(down, self.down_input(), lambda j: 2 * j + 1)
        up = perturb_parameters(self.make_up(time_mode)).eval()
        reach = (lambda t: t // 2) if time_mode is TimeMode.CAUSAL_V1_0 else (lambda t: (t + 1) // 2)
        assert_causal(up, self.up_input(), reach)


class FusionBlockContract(ComponentContract):
    """Checks for :class:`~vidtok_kit.interfaces.FusionBlock` implementations (T, H, W preserved)."""

    def make_block(self, mode: TimeMode, in_channels: int = 4, out_channels: int = 8) -> nn.Module:
        return self.component(self.make_config(), in_channels=in_channels, out_channels=out_channels, mode=mode)

    def video(self, channels: int = 4, frames: int = 5, size: int = 8) -> Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.randn(1, channels, frames, size, size, generator=gen)

    @_MODES
    def test_shapes(self, time_mode: TimeMode) -> None:
        for cin, cout in ((4, 8), (8, 8)):
            with torch.no_grad():
                y = self.make_block(time_mode, cin, cout).eval()(self.video(cin))
            assert y.shape == (1, cout, 5, 8, 8) and torch.isfinite(y).all()

    @_MODES
    def test_gradients(self, time_mode: TimeMode) -> None:
        block = perturb_parameters(self.make_block(time_mode).train())
        x = self.video().requires_grad_(True)
        assert_gradients_reach_every_parameter(block, block(x))
        assert x.grad is not None and x.grad.abs().sum() > 0

    @_MODES
    def test_eval_determinism(self, time_mode: TimeMode) -> None:
        block = self.make_block(time_mode).eval()
        x = self.video()
        assert torch.equal(block(x), block(x))

    @_MODES
    def test_torch_export(self, time_mode: TimeMode) -> None:
        assert_exportable(self.make_block(time_mode), self.video())

    @_MODES
    def test_causal_in_time(self, time_mode: TimeMode) -> None:
        if not time_mode.causal:
            pytest.skip("non-causal mode")
        block = perturb_parameters(self.make_block(time_mode, 4, 4)).eval()
        assert_causal(block, self.video(), lambda t: t)


#: registry kind -> the contract every component of that kind must pass
CONTRACTS: dict[str, type[ComponentContract]] = {
    "regularizer": RegularizerContract,
    "spatial_sampler": SpatialSamplerContract,
    "temporal_sampler": TemporalSamplerContract,
    "fusion": FusionBlockContract,
}


# -- fixtures (available to any test session that lists this module in ``pytest_plugins``) -------


@pytest.fixture
def vidtok_registry() -> Any:
    """The registry of every installed plugin (built-ins and entry points)."""
    from vidtok_kit.pluginmanager import default_registry

    return default_registry()


@pytest.fixture
def make_tiny_model(vidtok_registry: Any) -> Callable[..., Any]:
    """Factory: ``make_tiny_model(causal=False, regularizer={"kind": "fsq", "levels": [4, 4, 4]}, z_channels=3)``."""
    return lambda **model: tiny_model(vidtok_registry, **model)


@pytest.fixture
def make_video() -> Callable[..., Tensor]:
    """Factory of seeded random videos in [-1, 1]: ``make_video(frames=9, size=32, batch=1)``."""

    def make(frames: int = 9, size: int = 32, batch: int = 1, seed: int = 0) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.rand(batch, 3, frames, size, size, generator=gen) * 2 - 1

    return make
