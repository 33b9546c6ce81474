"""PatchGAN discriminators: layouts, output shapes, pix2pix initialisation, name lookup."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidtok_kit.errors import ComponentError
from vidtok_kit.losses import DISCRIMINATORS, NLayerDiscriminator, NLayerDiscriminator3D, build_discriminator


def test_2d_layout_matches_taming() -> None:
    d = NLayerDiscriminator()
    # taming/VidTok NLayerDiscriminator(input_nc=3, ndf=64, n_layers=3) has 2,765,633 parameters
    assert sum(p.numel() for p in d.parameters()) == 2_765_633
    convs = [m for m in d.main if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0], c.bias is not None) for c in convs] == [
        (3, 64, 2, True),
        (64, 128, 2, False),
        (128, 256, 2, False),
        (256, 512, 1, False),
        (512, 1, 1, True),
    ]
    assert "main.11.bias" in d.state_dict() and "main.3.running_mean" in d.state_dict()


def test_2d_scores_images_and_each_frame() -> None:
    d = NLayerDiscriminator()
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)
    video = torch.randn(2, 3, 4, 32, 32)
    out = d(video)
    assert out.shape == (2, 1, 4, 2, 2) and d.out_size(32, 32) == (2, 2)
    d.eval()  # per-frame: frame 1 of clip 0 scored alone gives the same logits (BN in eval)
    torch.testing.assert_close(d(video)[0, :, 1], d(video[0:1, :, 1])[0])


def test_3d_shapes_and_strides() -> None:
    d = NLayerDiscriminator3D()
    strides = [m.stride for m in d.main if isinstance(m, nn.Conv3d)]
    assert strides == [(2, 2, 2), (2, 2, 2), (1, 2, 2), (1, 1, 1), (1, 1, 1)]
    assert all(m.kernel_size == (4, 4, 4) for m in d.main if isinstance(m, nn.Conv3d))
    assert d(torch.randn(2, 3, 16, 32, 32)).shape == (2, 1, *d.out_size(16, 32, 32)) == (2, 1, 1, 2, 2)
    assert d.out_size(17, 24, 24) == (1, 1, 1)
    assert d.out_size(15, 24, 24)[0] == 0  # documented minimum: 16 frames


@pytest.mark.parametrize("cls", [NLayerDiscriminator, NLayerDiscriminator3D])
def test_init_statistics(cls) -> None:
    torch.manual_seed(0)
    d = cls()
    convs = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    bns = [m for m in d.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d))]
    big = max(convs, key=lambda c: c.weight.numel()).weight
    assert abs(big.mean().item()) < 1e-3 and abs(big.std().item() - 0.02) < 1e-3
    for c in convs:
        assert abs(c.weight.std().item() - 0.02) < 3e-3
    bn_w = torch.cat([b.weight for b in bns])
    assert abs(bn_w.mean().item() - 1.0) < 5e-3 and abs(bn_w.std().item() - 0.02) < 5e-3
    assert all(torch.equal(b.bias, torch.zeros_like(b.bias)) for b in bns)


def test_selectable_by_name() -> None:
    assert set(DISCRIMINATORS) == {"2d", "3d"}
    assert isinstance(build_discriminator("2d", n_layers=2, ndf=8), NLayerDiscriminator)
    assert isinstance(build_discriminator("3d", ndf=8), NLayerDiscriminator3D)
    with pytest.raises(ComponentError, match=r"unknown discriminator '4d'; available: \['2d', '3d'\]"):
        build_discriminator("4d")
