"""I3D architecture, preprocessing and the local-only strict weight loader."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from vidtok_kit.errors import CheckpointError
from vidtok_kit.metrics import (
    I3D_WEIGHTS_ENV,
    I3DFeatureExtractor,
    InceptionI3d,
    load_i3d,
    preprocess_for_i3d,
)


@pytest.fixture(scope="module")
def i3d() -> InceptionI3d:
    torch.manual_seed(0)
    return InceptionI3d().eval()


@pytest.fixture(scope="module")
def weights(i3d, tmp_path_factory):
    """The random I3D saved once in both supported formats."""
    d = tmp_path_factory.mktemp("i3d")
    sd = {k: v.contiguous() for k, v in i3d.state_dict().items()}
    save_file(sd, str(d / "i3d.safetensors"))
    torch.save(sd, d / "i3d.pt")
    return d


def test_forward_shapes_on_tiny_input(i3d):
    x = torch.rand(2, 3, 8, 64, 64) * 2 - 1
    with torch.inference_mode():
        logits, feats = i3d(x), i3d.forward_features(x)
    assert logits.shape == (2, 400) and feats.shape == (2, 1024, 1)
    assert torch.isfinite(logits).all() and torch.isfinite(feats).all()


def test_full_size_shapes_on_meta_device():
    """224x224x16, the FVD input, without paying for a CPU forward."""
    with torch.device("meta"):
        model = InceptionI3d()
        x = torch.empty(1, 3, 16, 224, 224)
        assert model(x).shape == (1, 400)
        assert model.forward_features(x).shape == (1, 1024, 1)


def test_state_dict_uses_pytorch_i3d_keys(i3d):
    keys = set(i3d.state_dict())
    for k in (
        "Conv3d_1a_7x7.conv3d.weight",
        "Conv3d_1a_7x7.bn.running_var",
        "Conv3d_2c_3x3.conv3d.weight",
        "Mixed_3b.b1b.conv3d.weight",
        "Mixed_5c.b3b.bn.bias",
        "logits.conv3d.weight",
        "logits.conv3d.bias",
    ):
        assert k in keys, k
    # 57 Unit3D blocks with BatchNorm (conv weight + 5 BN tensors) + the biased logits conv
    assert len(keys) == 57 * 6 + 2
    assert i3d.state_dict()["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)


def test_preprocess_resizes_and_rescales():
    v = torch.full((1, 3, 4, 32, 48), 0.5)
    v[..., 0, 0] = 1.0
    out = preprocess_for_i3d(v)
    assert out.shape == (1, 3, 4, 224, 224)
    assert out.min() >= -1 and out.max() <= 1 and out[..., 100, 100].abs().max() == 0
    x = torch.rand(1, 3, 2, 224, 224)
    torch.testing.assert_close(preprocess_for_i3d(x), x * 2 - 1)


@pytest.mark.parametrize(("features", "dim"), [("logits", 400), ("pool", 1024)])
def test_feature_extractor_dims(i3d, features, dim):
    extractor = I3DFeatureExtractor(i3d, features=features, size=None)
    with torch.inference_mode():
        assert extractor(torch.rand(2, 3, 8, 32, 32)).shape == (2, dim)


@pytest.mark.parametrize("name", ["i3d.safetensors", "i3d.pt"])
def test_load_round_trip_is_strict_and_frozen(i3d, weights, name):
    model = load_i3d(weights / name)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    ref = i3d.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    x = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(model(x), i3d(x))


def test_env_var_names_default_path(weights, monkeypatch):
    monkeypatch.setenv(I3D_WEIGHTS_ENV, str(weights / "i3d.safetensors"))
    assert isinstance(load_i3d(), InceptionI3d)
    monkeypatch.delenv(I3D_WEIGHTS_ENV)
    with pytest.raises(CheckpointError, match=I3D_WEIGHTS_ENV):
        load_i3d()


def test_legacy_file_without_batchnorm_counters_loads(i3d, tmp_path):
    """pytorch-i3d's published weights predate BatchNorm's num_batches_tracked."""
    sd = {k: v for k, v in i3d.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "legacy.pt")
    load_i3d(tmp_path / "legacy.pt")


def _one_line_error(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_i3d(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_file_is_one_line_error(tmp_path):
    assert "does not exist" in _one_line_error(tmp_path / "nope.safetensors")


def test_wrong_keys_are_one_line_error(i3d, tmp_path):
    sd = dict(i3d.state_dict())
    sd["extra.weight"] = sd.pop("Mixed_4b.b0.conv3d.weight")
    torch.save(sd, tmp_path / "renamed.pt")
    msg = _one_line_error(tmp_path / "renamed.pt")
    assert "1 missing keys (Mixed_4b.b0.conv3d.weight)" in msg and "1 unexpected keys (extra.weight)" in msg


def test_wrong_shapes_are_one_line_error(i3d, tmp_path):
    sd = dict(i3d.state_dict())
    sd["logits.conv3d.bias"] = torch.zeros(10)
    torch.save(sd, tmp_path / "ten.pt")
    assert "shape mismatches (logits.conv3d.bias (10,) vs (400,))" in _one_line_error(tmp_path / "ten.pt")


def test_unreadable_file_is_one_line_error(tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint at all\n" * 4)
    _one_line_error(bad)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    assert "not a flat state dict" in _one_line_error(tmp_path / "list.pt")
