"""The contract kit for plugin authors (``vidtok_kit.testing``), used the way a third party uses it.

A pytester session opts in with ``pytest_plugins``, subclasses the mixins for a good component and
for deliberately broken ones, and the contract must pass the first and catch each flaw: a fusion
block that peeks at future frames, a quantizer without a straight-through gradient, a sampler with
a parameter its forward never uses.
"""

from __future__ import annotations

import pytest

THIRD_PARTY_TESTS = '''
import torch
from torch import nn

from vidtok_kit.plugins.fusion.res2d import Res2dBlock
from vidtok_kit.plugins.regularizers.fsq import FSQConfig, FSQRegularizer
from vidtok_kit.plugins.regularizers.kl import KLRegularizer
from vidtok_kit.plugins.spatial.conv2d import Conv2dSampler, Conv2dSpatialDown
from vidtok_kit.testing import FusionBlockContract, RegularizerContract, SpatialSamplerContract


class TestGoodKL(RegularizerContract):
    component = KLRegularizer


class TestGoodFSQ(RegularizerContract):
    component = FSQRegularizer

    def make_config(self):
        return FSQConfig(levels=(4, 4, 4))


class PeekingBlock(Res2dBlock):
    name = "peeking"

    def forward(self, x, state=None):
        return super().forward(x) + 0.1 * x.roll(-1, dims=2).mean(dim=1, keepdim=True)


class TestPeekingBlock(FusionBlockContract):
    component = PeekingBlock


class NoStraightThrough(FSQRegularizer):
    name = "no_ste"

    def quantize(self, z):
        return torch.round(self.bound(z)) / self.half_width


class TestNoStraightThrough(RegularizerContract):
    component = NoStraightThrough

    def make_config(self):
        return FSQConfig(levels=(4, 4, 4))


class DownWithDeadWeight(Conv2dSpatialDown):
    def __init__(self, config, *, channels, mode):
        super().__init__(config, channels=channels, mode=mode)
        self.unused = nn.Parameter(torch.zeros(3))


class DeadWeightSampler(Conv2dSampler):
    name = "dead_weight"
    Down = DownWithDeadWeight


class TestDeadWeightSampler(SpatialSamplerContract):
    component = DeadWeightSampler
'''


@pytest.fixture
def run(pytester: pytest.Pytester):
    pytester.makeconftest('pytest_plugins = ["vidtok_kit.testing"]\n')
    pytester.makepyfile(test_third_party=THIRD_PARTY_TESTS)
    # torch.export is exercised on every registered component in tests/components; skipped here for time
    return pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-rf", "-k", "not torch_export")


def test_contract_passes_good_components_and_catches_flaws(run: pytest.RunResult) -> None:
    failed = {line.split(" ")[1].split(" - ")[0] for line in run.outlines if line.startswith("FAILED ")}
    assert failed == {
        "test_third_party.py::TestPeekingBlock::test_causal_in_time[v1.0]",
        "test_third_party.py::TestPeekingBlock::test_causal_in_time[v1.1]",
        "test_third_party.py::TestNoStraightThrough::test_gradients",
        "test_third_party.py::TestDeadWeightSampler::test_gradients[noncausal]",
        "test_third_party.py::TestDeadWeightSampler::test_gradients[v1.0]",
        "test_third_party.py::TestDeadWeightSampler::test_gradients[v1.1]",
    }, "\n".join(run.outlines[-30:])
    text = "\n".join(run.outlines)
    assert "output frame 0 changed when input frame 1 did" in text
    assert "no gradient reaches the encoder" in text
    assert "parameter 'unused' received no gradient" in text
    outcomes = run.parseoutcomes()
    assert outcomes["failed"] == 6 and outcomes["passed"] >= 20
