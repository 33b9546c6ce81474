"""Weight files download themselves, verified, from a local HTTP server the test starts (no network)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vidtok_kit import weights
from vidtok_kit.errors import CheckpointError
from vidtok_kit.weights import WEIGHT_FILES, WeightFile, WeightFileError, weight_path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """``(base URL, folder it serves, paths requested)`` of a 127.0.0.1 server on a free port."""
    root = tmp_path / "served"
    root.mkdir()
    requested: list[str] = []

    class Handler(_Quiet):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requested
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, online, no env var naming the files."""
    monkeypatch.setenv(weights.ENV_CACHE, str(tmp_path / "cache"))
    for name in (weights.ENV_OFFLINE, "HF_HUB_OFFLINE", *(spec.env for spec in WEIGHT_FILES.values())):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache" / "weights"


def _spec(url: str, payload: bytes, **kw: object) -> WeightFile:
    fields = dict(key="toy", description="toy weights", filename="toy.bin", url=url, env="VIDTOK_KIT_TOY_WEIGHTS",
                  sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    fields.update(kw)
    return WeightFile(**fields)  # type: ignore[arg-type]


def test_right_hash_is_downloaded_cached_and_reused(server, cache: Path) -> None:
    base, root, requested = server
    payload = b"weights" * 1000
    (root / "toy.bin").write_bytes(payload)
    table = {"toy": _spec(f"{base}/toy.bin", payload)}
    path = weight_path("toy", files=table, progress=False)
    assert path == cache / "toy.bin" and path.read_bytes() == payload
    assert sorted(p.name for p in cache.iterdir()) == ["toy.bin"]  # no temp file left
    assert weight_path("toy", files=table) == path and requested == ["/toy.bin"]  # second call: the cache


def test_wrong_hash_is_refused_and_nothing_is_cached(server, cache: Path) -> None:
    base, root, _ = server
    (root / "toy.bin").write_bytes(b"tampered")
    table = {"toy": _spec(f"{base}/toy.bin", b"original", size=None)}
    with pytest.raises(WeightFileError) as info:
        weight_path("toy", files=table, progress=False)
    msg = str(info.value)
    assert "\n" not in msg and "SHA-256" in msg and "refused" in msg and f"{base}/toy.bin" in msg
    assert not cache.exists() or not any(cache.iterdir())


def test_git_blob_pin_is_checked_too(server, cache: Path) -> None:
    base, root, _ = server
    payload = b"i3d-ish"
    (root / "i3d.pt").write_bytes(payload)
    blob = hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()
    good = {"toy": _spec(f"{base}/i3d.pt", payload, sha256=None, size=None, git_blob_sha1=blob)}
    assert weight_path("toy", files=good, progress=False).read_bytes() == payload
    bad = {"toy": _spec(f"{base}/i3d.pt", payload, sha256=None, size=None, git_blob_sha1="0" * 40, filename="other.pt")}
    with pytest.raises(WeightFileError, match="git blob SHA-1"):
        weight_path("toy", files=bad, progress=False)
    assert not (cache / "other.pt").exists()


def test_a_corrupted_cache_file_is_refused(server, cache: Path) -> None:
    base, root, _ = server
    payload = b"good weights"
    (root / "toy.bin").write_bytes(payload)
    table = {"toy": _spec(f"{base}/toy.bin", payload)}
    path = weight_path("toy", files=table, progress=False)
    path.write_bytes(b"bad weights!")  # same size, different bytes
    with pytest.raises(WeightFileError, match="refused"):
        weight_path("toy", files=table)


@pytest.mark.parametrize("offline_var", ["VIDTOK_KIT_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_empty_cache_is_one_line_naming_the_file(offline_var: str, monkeypatch, cache: Path) -> None:
    monkeypatch.setenv(offline_var, "1")
    with pytest.raises(WeightFileError) as info:
        weight_path("vgg16")
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, CheckpointError)
    assert "vgg16-397923af.pth" in msg and "VIDTOK_KIT_VGG16_WEIGHTS=FILE" in msg
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in msg and str(cache / "vgg16-397923af.pth") in msg


def test_offline_uses_what_is_cached(monkeypatch, cache: Path) -> None:
    payload = b"cached"
    cache.mkdir(parents=True)
    (cache / "toy.bin").write_bytes(payload)
    monkeypatch.setenv("VIDTOK_KIT_OFFLINE", "1")
    table = {"toy": _spec("http://127.0.0.1:9/never", payload)}
    assert weight_path("toy", files=table) == cache / "toy.bin"


def test_explicit_file_and_env_var_win(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VIDTOK_KIT_OFFLINE", "1")
    mine = tmp_path / "mine.safetensors"
    assert weight_path("vgg16", mine) == mine  # not hashed: a user's conversion is their choice
    monkeypatch.setenv("VIDTOK_KIT_I3D_WEIGHTS", str(mine))
    assert weight_path("i3d") == mine


def test_lpips_heads_come_from_the_installed_lpips_wheel(tmp_path: Path, monkeypatch) -> None:
    """A fake installed ``lpips`` distribution (dist-info + RECORD) on sys.path; it is never imported."""
    site = tmp_path / "site"
    payload = b"lin heads"
    (site / "lpips" / "weights" / "v0.1").mkdir(parents=True)
    (site / "lpips" / "weights" / "v0.1" / "vgg.pth").write_bytes(payload)
    info = site / "lpips-0.1.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lpips\nVersion: 0.1.4\n")
    (info / "RECORD").write_text("lpips/weights/v0.1/vgg.pth,,\nlpips-0.1.4.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("VIDTOK_KIT_OFFLINE", "1")
    pins = dict(sha256=hashlib.sha256(payload).hexdigest(), git_blob_sha1=None, size=len(payload))
    table = {"lpips_vgg": replace(WEIGHT_FILES["lpips_vgg"], **pins)}
    assert weight_path("lpips_vgg", files=table) == (site / "lpips" / "weights" / "v0.1" / "vgg.pth").resolve()
    wrong = {"lpips_vgg": replace(WEIGHT_FILES["lpips_vgg"], size=len(payload))}  # the real pin: this is not it
    with pytest.raises(WeightFileError, match="installed lpips package.*refused"):
        weight_path("lpips_vgg", files=wrong)


def test_pins_are_full_digests() -> None:
    for spec in WEIGHT_FILES.values():
        assert spec.sha256 is not None or spec.git_blob_sha1 is not None, spec.key
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert spec.git_blob_sha1 is None or len(spec.git_blob_sha1) == 40
    # torchvision's convention: the file name carries the first 8 hex digits of its SHA-256
    assert WEIGHT_FILES["vgg16"].sha256.startswith(WEIGHT_FILES["vgg16"].filename.split("-")[1][:8])


# -- wired into the loaders ---------------------------------------------------------------------------


def test_lpips_loads_downloaded_files(server, monkeypatch, tmp_path: Path) -> None:
    """LPIPS.from_files() with nothing named: both files come through weight_path, verified."""
    from safetensors.torch import save_file

    from vidtok_kit.losses import LPIPS

    base, root, requested = server
    reference = LPIPS.random_init(0)
    sd = reference.state_dict()
    torch.save({k.removeprefix("net."): v for k, v in sd.items() if k.startswith("net.")}, root / "vgg16.pth")
    save_file({k: v for k, v in sd.items() if k.startswith("lin")}, str(root / "lin.safetensors"))
    table = dict(WEIGHT_FILES)
    for key, name in (("vgg16", "vgg16.pth"), ("lpips_vgg", "lin.safetensors")):
        data = (root / name).read_bytes()
        table[key] = replace(WEIGHT_FILES[key], url=f"{base}/{name}", sha256=hashlib.sha256(data).hexdigest(),
                             git_blob_sha1=None, size=len(data), distribution=None, filename=name)
    monkeypatch.setattr(weights, "WEIGHT_FILES", table)
    loaded = LPIPS.from_files()
    assert sorted(requested) == ["/lin.safetensors", "/vgg16.pth"]
    for (k, v), (k2, v2) in zip(loaded.state_dict().items(), reference.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_lpips_and_i3d_offline_errors_say_how_to_provide(monkeypatch) -> None:
    from vidtok_kit.losses import LPIPS, LPIPSWeightsError
    from vidtok_kit.metrics import load_i3d

    monkeypatch.setenv("VIDTOK_KIT_OFFLINE", "1")
    with pytest.raises(LPIPSWeightsError) as info:
        LPIPS.from_files()
    assert "\n" not in str(info.value) and "VIDTOK_KIT_VGG16_WEIGHTS" in str(info.value) and "vgg16_weights" in str(info.value)
    with pytest.raises(CheckpointError) as info:
        load_i3d()
    msg = str(info.value)
    assert "\n" not in msg and "VIDTOK_KIT_I3D_WEIGHTS" in msg and "rgb_imagenet.pt" in msg


def test_i3d_loads_a_downloaded_file(server, monkeypatch) -> None:
    from vidtok_kit.metrics import InceptionI3d, load_i3d

    base, root, _ = server
    model = InceptionI3d(num_classes=400)
    torch.save(model.state_dict(), root / "rgb_imagenet.pt")
    data = (root / "rgb_imagenet.pt").read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    table = {**WEIGHT_FILES, "i3d": replace(WEIGHT_FILES["i3d"], url=f"{base}/rgb_imagenet.pt", git_blob_sha1=blob)}
    monkeypatch.setattr(weights, "WEIGHT_FILES", table)
    loaded = load_i3d()
    for (k, v), (k2, v2) in zip(loaded.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
