"""LPIPS and its VGG16 trunk: metric properties with random weights, strict local-file loading."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from vidtok_kit.losses import ENV_LPIPS_WEIGHTS, ENV_VGG16_WEIGHTS, LPIPS, LPIPSWeightsError, VGG16Features

# torchvision vgg16().features conv indices; a torchvision checkpoint must map onto them 1:1.
TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


@pytest.fixture(scope="module")
def lpips() -> LPIPS:
    return LPIPS.random_init(seed=0)


@pytest.fixture()
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    return x, y


def _write(sd: dict[str, torch.Tensor], path) -> None:
    if str(path).endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)


def _vgg_file_sd(model: LPIPS) -> dict[str, torch.Tensor]:
    """The trunk as a full torchvision vgg16 checkpoint would hold it (classifier included)."""
    sd = {k: v.clone() for k, v in model.net.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)
    return sd


def _lin_file_sd(model: LPIPS) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith("lin")}


def test_trunk_keys_match_torchvision_layout() -> None:
    keys = set(VGG16Features(device="meta").state_dict())
    expected = {f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES for p in ("weight", "bias")}
    assert keys == expected


def test_trunk_returns_five_relu_stages() -> None:
    trunk = VGG16Features()
    out = trunk(torch.randn(1, 3, 32, 32))
    assert out._fields == ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
    assert [o.shape[1] for o in out] == list(VGG16Features.channels)
    assert [o.shape[-1] for o in out] == [32, 16, 8, 4, 2]
    assert all((o >= 0).all() for o in out)


def test_identical_inputs_give_zero(lpips: LPIPS, images) -> None:
    x, _ = images
    assert torch.equal(lpips(x, x), torch.zeros(2, 1, 1, 1))


def test_symmetric_and_positive(lpips: LPIPS, images) -> None:
    x, y = images
    d_xy, d_yx = lpips(x, y), lpips(y, x)
    assert d_xy.shape == (2, 1, 1, 1)
    torch.testing.assert_close(d_xy, d_yx, rtol=0, atol=0)
    assert (d_xy > 0).all()


def test_frozen_eval_but_differentiable_in_input(lpips: LPIPS, images) -> None:
    assert not any(p.requires_grad for p in lpips.parameters())
    lpips.train()  # a parent's .train() must not switch on head dropout
    assert not lpips.training and not any(m.training for m in lpips.modules())
    x, y = images
    x = x.clone().requires_grad_(True)
    lpips(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b = LPIPS.random_init(3), LPIPS.random_init(3)
    assert torch.equal(torch.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert all((v >= 0).all() for k, v in a.state_dict().items() if k.startswith("lin"))


@pytest.fixture(scope="module")
def weight_files(lpips: LPIPS, tmp_path_factory) -> dict[str, tuple]:
    """Good trunk + head files in both formats, written once (the trunk is 58 MB)."""
    root = tmp_path_factory.mktemp("lpips_weights")
    files = {}
    for suffix in (".safetensors", ".pth"):
        vgg, lin = root / f"vgg16{suffix}", root / f"lpips_vgg{suffix}"
        _write(_vgg_file_sd(lpips), vgg)
        _write(_lin_file_sd(lpips), lin)
        files[suffix] = (vgg, lin)
    return files


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_round_trip_through_files(lpips: LPIPS, images, weight_files, suffix: str) -> None:
    loaded = LPIPS.from_files(*weight_files[suffix])
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x, y = images
    torch.testing.assert_close(loaded(x, y), lpips(x, y), rtol=0, atol=0)


def test_env_vars_give_defaults(lpips: LPIPS, weight_files, monkeypatch) -> None:
    vgg, lin = weight_files[".safetensors"]
    monkeypatch.setenv(ENV_VGG16_WEIGHTS, str(vgg))
    monkeypatch.setenv(ENV_LPIPS_WEIGHTS, str(lin))
    loaded = LPIPS.from_files()
    for (k, v), (k2, v2) in zip(loaded.state_dict().items(), lpips.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_unconfigured_weights_name_the_env_var(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VGG16_WEIGHTS, raising=False)
    monkeypatch.delenv(ENV_LPIPS_WEIGHTS, raising=False)
    with pytest.raises(LPIPSWeightsError, match=ENV_VGG16_WEIGHTS):
        LPIPS.from_files()


def test_missing_file_is_named(tmp_path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(LPIPSWeightsError, match="nope.safetensors"):
        LPIPS.from_files(missing, missing)


def test_unreadable_file_is_one_line(tmp_path) -> None:
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(LPIPSWeightsError) as info:
        LPIPS.from_files(bad, bad)
    assert "garbage.pth" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("which", "edit", "needle"),
    [
        ("vgg", lambda sd: sd.pop("features.28.bias"), "missing features.28.bias"),
        (
            "vgg",
            lambda sd: sd.__setitem__("features.3.weight", torch.zeros(1)),
            "unexpected features.3.weight",
        ),
        (
            "vgg",
            lambda sd: sd.__setitem__("features.0.weight", torch.zeros(64, 3, 1, 1)),
            "shape features.0.weight",
        ),
        ("lin", lambda sd: sd.__setitem__("lin5.model.1.weight", torch.zeros(1, 8, 1, 1)), "unexpected lin5"),
        ("lin", lambda sd: sd.pop("lin0.model.1.weight"), "missing lin0.model.1.weight"),
    ],
)
def test_strict_key_errors_name_the_file(lpips: LPIPS, weight_files, tmp_path, which, edit, needle) -> None:
    vgg, lin = weight_files[".safetensors"]
    if which == "vgg":
        vgg_sd = _vgg_file_sd(lpips)
        edit(vgg_sd)
        vgg = tmp_path / "vgg16.safetensors"
        _write(vgg_sd, vgg)
    else:
        lin_sd = _lin_file_sd(lpips)
        edit(lin_sd)
        lin = tmp_path / "lin.pth"
        _write(lin_sd, lin)
    with pytest.raises(LPIPSWeightsError) as info:
        LPIPS.from_files(vgg, lin)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg
    assert str(vgg if which == "vgg" else lin) in msg
