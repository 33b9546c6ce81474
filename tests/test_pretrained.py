"""from_pretrained / save_pretrained / push_to_hub, without the network.

The released-model path reads a Hugging Face cache the test writes in the documented layout
(``models--microsoft--VidTok/{blobs,refs/main,snapshots/<commit>/...}``) and runs in a fresh process
with ``HF_HOME`` pointing there and ``HF_HUB_OFFLINE=1``, as a user would. The checkpoint is an
original-layout Lightning file (``{"state_dict": {original keys}}``) made from a tiny model: the
released recipe's full-size model would be hundreds of MB, so ``recipe=`` pairs the released file
name with the tiny recipe; everything else (repository, file path, offline cache lookup, strict
original-layout loading) is the released-model path.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import vidtok_kit
from vidtok_kit.convert.keymaps import original_keys
from vidtok_kit.errors import CheckpointError
from vidtok_kit.pretrained import RELEASED_REPO, released_checkpoint, released_models

NAME = "vidtok_fsq_causal_488_262144"
TINY = "tiny/fsq_causal"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _latent(out: object) -> torch.Tensor:
    return out.latent if hasattr(out, "latent") else out  # type: ignore[return-value]


def _model(tok: object) -> torch.nn.Module:
    return tok.model if hasattr(tok, "recipe") else tok  # type: ignore[return-value]


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    model = vidtok_kit.build_model(vidtok_kit.load_recipe(TINY))
    with torch.no_grad():  # move every weight off its init so a wrong load cannot pass by chance
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


@pytest.fixture
def video() -> torch.Tensor:
    return torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _original_ckpt(model: torch.nn.Module, path: Path) -> Path:
    ours = model.state_dict()
    state = {orig: ours[key].clone() for orig, key in original_keys(ours, causal=True).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "global_step": 0}, path)
    return path


def _hf_cache(hf_home: Path, files: dict[str, Path]) -> Path:
    """Write ``files`` (repo path -> local file) into the Hub cache layout of microsoft/VidTok."""
    repo = hf_home / "hub" / f"models--{RELEASED_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    for repo_path, local in files.items():
        data = local.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / COMMIT / repo_path
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(os.path.relpath(blob, link.parent))
        except OSError:  # no symlinks (Windows without developer mode): huggingface_hub copies too
            link.write_bytes(data)
    return hf_home


def _run_offline(hf_home: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_released_names_are_the_shipped_vidtok_recipes() -> None:
    names = released_models()
    assert len(names) == 23 and NAME in names
    assert released_checkpoint(NAME) == f"checkpoints/{NAME}.ckpt"
    assert released_checkpoint("vidtok_kl_causal_488_4chn_v1_1") == "checkpoints/vidtok_v1_1/vidtok_kl_causal_488_4chn_v1_1.ckpt"


def test_from_pretrained_offline_from_the_hub_cache_matches_the_model(tiny_model, video, tmp_path: Path) -> None:
    ckpt = _original_ckpt(tiny_model, tmp_path / "src" / f"{NAME}.ckpt")
    hf_home = _hf_cache(tmp_path / "hf", {released_checkpoint(NAME): ckpt})
    torch.save(video, tmp_path / "x.pt")
    done = _run_offline(hf_home, f"""
        import torch, vidtok_kit
        tok = vidtok_kit.from_pretrained({NAME!r}, recipe={TINY!r})
        out = tok.encode(torch.load("x.pt"))
        torch.save(out.latent if hasattr(out, "latent") else out, "latent.pt")
        tok2 = vidtok_kit.from_pretrained({NAME!r}, recipe={TINY!r}, revision={COMMIT!r})
        out2 = tok2.encode(torch.load("x.pt"))
        torch.save(out2.latent if hasattr(out2, "latent") else out2, "latent_rev.pt")
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        expected = _latent(tiny_model.encode(video))
        direct = _latent(vidtok_kit.load(TINY, checkpoint=ckpt).encode(video))
    for name in ("latent.pt", "latent_rev.pt"):
        got = torch.load(tmp_path / name)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(got, direct, atol=1e-4, rtol=0)


def test_offline_without_the_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "hf").mkdir()
    done = _run_offline(tmp_path / "hf", f"""
        import vidtok_kit
        from vidtok_kit.errors import CheckpointError
        try:
            vidtok_kit.from_pretrained({NAME!r})
        except CheckpointError as exc:
            print(exc)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert "\n" not in line and f"{RELEASED_REPO}/checkpoints/{NAME}.ckpt" in line and "HF_HUB_OFFLINE" in line


def test_unknown_name_lists_the_released_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as info:
        vidtok_kit.from_pretrained("vidtok_nope")
    assert "\n" not in str(info.value) and NAME in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors in this folder"):
        vidtok_kit.from_pretrained(tmp_path / "empty")


def test_save_pretrained_round_trips(tiny_model, video, tmp_path: Path) -> None:
    folder = vidtok_kit.save_pretrained(tiny_model, tmp_path / "saved", recipe=TINY)
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    tok = vidtok_kit.from_pretrained(folder)
    with torch.no_grad():
        torch.testing.assert_close(_latent(tok.encode(video)), _latent(tiny_model.encode(video)), atol=1e-6, rtol=0)
    again = vidtok_kit.save_pretrained(tok, tmp_path / "again", recipe=None if hasattr(tok, "recipe") else TINY)
    assert (again / "model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="recipe="):
        vidtok_kit.save_pretrained(tiny_model, tmp_path / "norecipe")


def test_push_to_hub_uploads_a_save_pretrained_folder(tiny_model, tmp_path: Path, monkeypatch) -> None:
    """Up to the upload call: HfApi's network methods are replaced by recorders."""
    from huggingface_hub import HfApi

    from vidtok_kit.pretrained import push_to_hub

    calls: dict[str, object] = {}

    def create_repo(self, repo_id, **kw):  # noqa: ANN001
        calls["create_repo"] = (repo_id, kw)

    def upload_folder(self, *, repo_id, folder_path, **kw):  # noqa: ANN001
        calls["upload"] = (repo_id, sorted(p.name for p in Path(folder_path).iterdir()), kw)
        calls["card"] = (Path(folder_path) / "README.md").read_text()
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert push_to_hub(tiny_model, "someone/tiny-tok", recipe=TINY, revision="main") == "commit-info"
    repo_id, names, kw = calls["upload"]  # type: ignore[misc]
    assert repo_id == "someone/tiny-tok" and names == ["README.md", "model.json", "model.safetensors"]
    assert kw["revision"] == "main" and calls["create_repo"][0] == "someone/tiny-tok"  # type: ignore[index]
    assert "library_name: vidtok-kit" in calls["card"] and 'from_pretrained("someone/tiny-tok")' in calls["card"]  # type: ignore[operator]


def test_from_pretrained_reads_a_pushed_repo_from_the_hub_cache(tiny_model, video, tmp_path: Path) -> None:
    folder = vidtok_kit.save_pretrained(tiny_model, tmp_path / "saved", recipe=TINY)
    hf_home = tmp_path / "hf"
    repo = hf_home / "hub" / "models--someone--tiny-tok"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for name in ("model.safetensors", "model.json"):
        (snap / name).write_bytes((folder / name).read_bytes())
    torch.save(video, tmp_path / "x.pt")
    done = _run_offline(hf_home, """
        import torch, vidtok_kit
        out = vidtok_kit.from_pretrained("someone/tiny-tok").encode(torch.load("x.pt"))
        torch.save(out.latent if hasattr(out, "latent") else out, "latent.pt")
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "latent.pt"), _latent(tiny_model.encode(video)), atol=1e-6, rtol=0)
