"""``--pretrained NAME`` on every command that takes ``--checkpoint`` (issue 15), without the network.

The commands run in a fresh process against a Hugging Face cache the test writes (``HF_HOME``,
``HF_HUB_OFFLINE=1``; helpers from ``tests/test_pretrained.py``). As there, the cached file is an
original-layout checkpoint of a tiny model under the released name, so ``--recipe`` pairs it with
the tiny recipe; without ``--recipe`` the shipped recipe of the name is what the resolver returns.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import torch

from vidtok_kit.cli_options import pretrained_option, resolve_pretrained
from vidtok_kit.errors import InputError


def _helpers() -> object:
    """tests/test_pretrained.py as a module (the suite runs with --import-mode=importlib: no sys.path entry)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_vidtok_test_pretrained", Path(__file__).with_name("test_pretrained.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_h = _helpers()
COMMIT, NAME, TINY = _h.COMMIT, _h.NAME, _h.TINY  # type: ignore[attr-defined]
_hf_cache, _original_ckpt, _run_offline = _h._hf_cache, _h._original_ckpt, _h._run_offline  # type: ignore[attr-defined]

#: every command that takes --checkpoint, by the module that defines it (train has no --checkpoint)
COMMANDS = {
    "encode": "vidtok_kit.tokenize.commands:encode_command",
    "decode": "vidtok_kit.tokenize.commands:decode_command",
    "reconstruct": "vidtok_kit.tokenize.commands:reconstruct_command",
    "eval": "vidtok_kit.evaluation.commands:eval_command",
    "export": "vidtok_kit.export.commands:export_command",
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_with_checkpoint_takes_pretrained(name: str) -> None:
    import importlib

    module, attr = COMMANDS[name].split(":")
    command: click.Command = getattr(importlib.import_module(module), attr)
    options = {opt for p in command.params for opt in getattr(p, "opts", [])}
    assert {"--checkpoint", "--pretrained", "--revision"} <= options, options


def test_resolver_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import vidtok_kit.pretrained as pretrained

    calls: list[tuple[str, str | None]] = []

    def fake(name: str, *, revision: str | None = None) -> Path:
        calls.append((name, revision))
        return tmp_path / f"{name}.ckpt"

    monkeypatch.setattr(pretrained, "download_released", fake)
    assert resolve_pretrained(None, None, "r.toml") == ("r.toml", None)
    assert resolve_pretrained(NAME, None, None) == (NAME, tmp_path / f"{NAME}.ckpt")  # the shipped recipe's name
    assert resolve_pretrained(NAME, None, "tiny/fsq_causal", revision="v1") == ("tiny/fsq_causal", tmp_path / f"{NAME}.ckpt")
    assert calls == [(NAME, None), (NAME, "v1")]
    with pytest.raises(InputError, match="give one of them"):
        resolve_pretrained(NAME, Path("w.pt"), None)
    with pytest.raises(InputError, match="--revision applies to --pretrained"):
        resolve_pretrained(None, None, None, revision="main")
    command = click.command()(pretrained_option(lambda **kw: None))  # a plain decorator, for any click command
    assert {"--pretrained", "--revision"} <= {o for p in command.params for o in getattr(p, "opts", [])}


def test_encode_and_decode_with_pretrained_offline(tmp_path: Path) -> None:
    import vidtok_kit
    from vidtok_kit.io import write_video
    from vidtok_kit.pretrained import released_checkpoint
    from vidtok_kit.tokenize import load_tokens

    model = vidtok_kit.build_model(vidtok_kit.load_recipe(TINY))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ckpt = _original_ckpt(model.eval(), tmp_path / "src" / f"{NAME}.ckpt")
    hf_home = _hf_cache(tmp_path / "hf", {released_checkpoint(NAME): ckpt})
    write_video(tmp_path / "a.mp4", torch.rand(3, 9, 32, 32) * 2 - 1, 8)
    done = _run_offline(hf_home, f"""
        import sys
        from vidtok_kit.cli import main
        for argv in (["encode", "a.mp4", "--pretrained", {NAME!r}, "--recipe", {TINY!r}, "-o", "a.safetensors"],
                     ["encode", "a.mp4", "--pretrained", {NAME!r}, "--revision", {COMMIT!r}, "--recipe", {TINY!r},
                      "-o", "b.safetensors"],
                     ["decode", "a.safetensors", "--pretrained", {NAME!r}, "-o", "a_out.mp4"]):
            sys.argv = ["vidtok-kit", *argv]
            try:
                main()
            except SystemExit as exc:
                if exc.code:
                    raise
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    tokens, meta = load_tokens(tmp_path / "a.safetensors")
    assert "models--microsoft--VidTok" in meta.checkpoint and Path(meta.checkpoint).is_absolute()
    assert meta.checkpoint_sha256 and "randomly initialised" not in done.stderr
    other, _ = load_tokens(tmp_path / "b.safetensors")
    assert torch.equal(tokens, other)
    with torch.no_grad():
        x = vidtok_kit.io.read_video(tmp_path / "a.mp4")[0].unsqueeze(0)
        indices = vidtok_kit.load(TINY, checkpoint=ckpt).encode(x).indices
    assert indices is not None
    want = indices[0]
    assert (tokens.long() != want.long()).float().mean() < 0.01  # FSQ rounding-boundary flips only
    assert (tmp_path / "a_out.mp4").is_file()
