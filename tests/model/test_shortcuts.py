"""The layers' algebraic shortcuts compute the original arithmetic's numbers, in every time mode.

:mod:`vidtok_kit.model.subpixel` (spatial upsampler on the small image) and AlphaBlender's
low-rate time upsampler are checked against the direct computation they replace, on inputs that
exercise the edges (odd sizes, the v1.1 lead frames, both memory layouts), and the whole model
switched to the fast arithmetic (:func:`set_arithmetic`) against the same model with the reference one.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from vidtok_kit.plugins.temporal.alphablender import (
    AlphaBlenderConfig,
    AlphaBlenderUp,
    _tap_weights,
    blend_up_from_low_rate,
)

from vidtok_kit.model.layers import TimeMode
from vidtok_kit.model.shortcuts import arithmetic_of, set_arithmetic, using_arithmetic
from vidtok_kit.model.subpixel import fold_nearest_up_kernel, nearest_up_conv2d
from vidtok_kit.testing import perturb_parameters, tiny_model


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize(("h", "w"), [(5, 7), (8, 8), (1, 3)])
def test_nearest_up_conv2d_equals_interpolate_then_conv(channels_last: bool, h: int, w: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, h, w)
    weight, bias = torch.randn(4, 5, 3, 3), torch.randn(4)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), weight, bias, padding=1)
    out = nearest_up_conv2d(x, weight, bias)
    assert out.shape == ref.shape == (3, 4, 2 * h, 2 * w)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)


def test_nearest_up_conv2d_has_gradients_of_the_direct_form() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    weight = torch.randn(2, 3, 3, 3, requires_grad=True)
    bias = torch.randn(2, requires_grad=True)
    probe = torch.randn(2, 2, 8, 10)
    grads = []
    for fn in (nearest_up_conv2d, lambda a, k, b: F.conv2d(F.interpolate(a, scale_factor=2.0), k, b, padding=1)):
        (fn(x, weight, bias) * probe).sum().backward()
        grads.append([t.grad.clone() for t in (x, weight, bias)])
        for t in (x, weight, bias):
            t.grad = None
    for mine, direct in zip(*grads):
        torch.testing.assert_close(mine, direct, atol=1e-4, rtol=1e-5)


def test_folded_kernel_sums_the_taps_each_phase_sees() -> None:
    weight = torch.arange(9.0).view(1, 1, 3, 3)  # rows 0..2: [0 1 2], [3 4 5], [6 7 8]
    phases = fold_nearest_up_kernel(weight).view(4, 2, 2)
    # phase (0, 0): small rows (i-1, i) get kernel rows (0, 1+2), columns likewise
    torch.testing.assert_close(phases[0], torch.tensor([[0.0, 1 + 2], [3 + 6, 4 + 5 + 7 + 8]]))
    # phase (1, 1): small rows (i, i+1) get kernel rows (0+1, 2)
    torch.testing.assert_close(phases[3], torch.tensor([[0 + 1 + 3 + 4.0, 2 + 5], [6 + 7, 8.0]]))
    with pytest.raises(ValueError, match="3x3"):
        fold_nearest_up_kernel(torch.zeros(1, 1, 5, 5))


@pytest.mark.parametrize("mode", list(TimeMode), ids=lambda m: m.value)
@pytest.mark.parametrize("lead", [1, 2, 4])
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_alphablender_up_low_rate_form_equals_direct(mode: TimeMode, lead: int, frames: int) -> None:
    torch.manual_seed(0)
    up = perturb_parameters(AlphaBlenderUp(AlphaBlenderConfig(), channels=6, mode=mode, lead_frames=lead), 0.3)
    x = torch.randn(2, 6, frames, 8, 7).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        ref = up(x)
        set_arithmetic(up, "fast")
        out = up(x)
    assert out.shape == ref.shape == (2, 6, 2 * frames, 8, 7)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)


def test_alphablender_up_low_rate_form_halves_the_conv_macs() -> None:
    up = AlphaBlenderUp(AlphaBlenderConfig(), channels=8, mode=TimeMode.CAUSAL_V1_1, lead_frames=1)
    x = torch.randn(1, 8, 6, 8, 8)
    conv, alpha = up.conv.conv, torch.sigmoid(up.mix_factor)
    counts = []
    with torch.no_grad():
        # the low-rate form's body, called as a function: the flop counter cannot see inside the custom op
        for call in (lambda: up(x), lambda: blend_up_from_low_rate(x, conv.weight, conv.bias, alpha, "v1.1", 1)):
            with FlopCounterMode(display=False) as counter:
                call()
            counts.append(counter.get_total_flops())
    assert counts[1] * 2 == counts[0]


def test_tap_weights_cover_each_window() -> None:
    # v1.0 nearest doubling with two zero frames in front: output 0 sees (0, 0, x0) -> tap 2 of x0
    taps = _tap_weights(2, TimeMode.CAUSAL_V1_0, 1)
    assert [taps[tap][0] for tap in range(3)] == [{}, {}, {0: 1.0}]
    assert [taps[tap][3] for tap in range(3)] == [{0: 1.0}, {1: 1.0}, {1: 1.0}]
    # every v1.1 output window sums to 3 frames of weight 1 (interpolation weights sum to 1)
    taps = _tap_weights(5, TimeMode.CAUSAL_V1_1, 2)
    for frame in range(10):
        assert sum(sum(taps[tap][frame].values()) for tap in range(3)) == pytest.approx(3.0)


@pytest.mark.parametrize(("causal", "version"), [(True, "v1.0"), (True, "v1.1"), (False, "v1.1")])
def test_model_with_shortcuts_equals_original_arithmetic(causal: bool, version: str) -> None:
    torch.manual_seed(0)
    model = perturb_parameters(tiny_model(causal=causal, version=version))
    x = torch.rand(1, 3, 9 if causal else 8, 32, 32) * 2 - 1
    with torch.no_grad():
        assert set(arithmetic_of(model).values()) == {"reference"}  # a built model starts with the original's
        latent = model.encode(x).latent
        ref = model.decode(latent)
        with using_arithmetic(model, "fast"):
            assert set(arithmetic_of(model).values()) == {"fast"}
            torch.testing.assert_close(model.encode(x).latent, latent, atol=1e-5, rtol=0)
            torch.testing.assert_close(model.decode(latent), ref, atol=1e-5, rtol=0)
            with torch.enable_grad():  # training keeps the direct AlphaBlender form
                torch.testing.assert_close(model.decode(latent), ref, atol=1e-5, rtol=0)
        assert set(arithmetic_of(model).values()) == {"reference"}  # restored


def test_set_arithmetic_names_the_switched_modules_and_rejects_unknown_kinds() -> None:
    model = tiny_model(causal=True, version="v1.1")
    switched = set_arithmetic(model, "fast")
    assert any(name.endswith("time_upsample") or "up" in name for name in switched) and switched == list(arithmetic_of(model))
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        set_arithmetic(model, "approximate")  # type: ignore[arg-type]


def test_nearest_up_conv2d_functional_interleave_is_the_same() -> None:
    """The stacking interleave (what compilers and exporters see) equals the buffer writes."""
    torch.manual_seed(0)
    weight, bias = torch.randn(4, 5, 3, 3), torch.randn(4)
    x = torch.randn(2, 5, 6, 7)
    ref = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), weight, bias, padding=1)
    torch.testing.assert_close(nearest_up_conv2d(x, weight, bias, functional=True), ref, atol=2e-5, rtol=0)
    assert torch.equal(nearest_up_conv2d(x, weight, bias, functional=True), nearest_up_conv2d(x, weight, bias, functional=False))
