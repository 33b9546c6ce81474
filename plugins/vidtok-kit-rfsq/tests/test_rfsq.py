"""The plugin passes vidtok-kit's shared regularizer contract and is found through its entry point.

Run from this directory after ``pip install .``: ``pytest``. The contract mixin is the same one
vidtok-kit runs on its built-in regularizers.
"""

from __future__ import annotations

import pytest
import torch
from vidtok_kit_rfsq.plugin import ResidualFSQConfig, ResidualFSQRegularizer

from vidtok_kit.pluginmanager import load_plugins
from vidtok_kit.testing import RegularizerContract


class TestResidualFSQContract(RegularizerContract):
    """vidtok-kit's shared regularizer checks: shapes, dtypes, gradients, determinism, export, round trip."""

    component = ResidualFSQRegularizer

    def make_config(self) -> ResidualFSQConfig:
        return ResidualFSQConfig(levels=(8, 5, 5), num_quantizers=3, commitment_loss_weight=0.25)


def test_registered_through_the_entry_point() -> None:
    _, registry = load_plugins()  # autoload: entry points of the installed distributions
    assert registry.get("regularizer", "rfsq") is ResidualFSQRegularizer
    origin = registry.origin("regularizer", "rfsq")
    assert (origin.plugin, origin.distribution) == ("rfsq", "vidtok-kit-rfsq")


def test_each_stage_reduces_the_error() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 4, 8, 8, generator=gen) * 0.5
    errors = []
    for stages in (1, 2, 3):
        reg = ResidualFSQRegularizer(ResidualFSQConfig(levels=(4, 4, 4), num_quantizers=stages), z_channels=3)
        errors.append(float((reg.eval()(z).latent - z).abs().mean()))
    assert errors[1] < 0.7 * errors[0] and errors[2] < 0.7 * errors[1], errors


def test_codebook_size_and_index_range() -> None:
    reg = ResidualFSQRegularizer(ResidualFSQConfig(levels=(4, 4, 4), num_quantizers=2), z_channels=3)
    assert reg.codebook_size == 64**2 and reg.index_dtype == torch.int16
    out = reg.eval()(torch.randn(4, 3, 5, 8, 8) * 3)
    assert int(out.indices.min()) >= 0 and int(out.indices.max()) < reg.codebook_size
    # both stages are used: the high digit (stage 1) is not constant
    assert (out.indices.long() // 64).unique().numel() > 1


def test_levels_must_match_channels() -> None:
    with pytest.raises(ValueError, match="z_channels = 3"):
        ResidualFSQRegularizer(ResidualFSQConfig(levels=(4, 4, 4)), z_channels=4)
