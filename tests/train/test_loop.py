"""The Trainer on real sample video: it learns, resumes exactly, freezes, and survives NaNs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from vidtok_kit.train import Trainer, run

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "kl_causal.toml"


def _weights(run_dir: Path, step: int, name: str = "model") -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / f"step_{step:08d}" / f"{name}.safetensors"))


def test_a_few_steps_lower_the_loss_on_real_video(tmp_path, fast_sets, make_recipe) -> None:
    recipe = make_recipe([*fast_sets, "train.steps=30", "train.lr=3e-3", "train.batch_size=2", "data.crop='center'"])
    trainer = Trainer(recipe, tmp_path / "run", progress=False)
    x = next(iter(trainer.loader))["video"]
    with torch.no_grad():
        before = (trainer.model(x).recon - x).abs().mean().item()
    trainer.train()
    trainer.model.eval()
    with torch.no_grad():
        after = (trainer.model(x).recon - x).abs().mean().item()
    assert after < 0.75 * before, (before, after)
    rec = [r["loss/rec"] for r in trainer.metrics.records if "loss/rec" in r]
    assert len(rec) == 30 and sum(rec[-3:]) < sum(rec[:3])
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    assert json.loads((tmp_path / "run" / "plugins.json").read_text())


def test_resume_equals_uninterrupted_run(tmp_path, fast_sets, make_recipe) -> None:
    # GAN on from step 2, so discriminator, LeCam and both optimizers' states must resume too;
    # the interrupted run also uses a DataLoader worker: the data order must not depend on it
    sets = [*fast_sets, "train.save_every=2", "train.loss.disc_start=2", "train.loss.disc_lr=1e-3", "train.lr=1e-3",
            "train.ema_decay=0.5"]
    run(make_recipe([*sets, "train.steps=4"]), tmp_path / "full", progress=False)
    run(make_recipe([*sets, "train.steps=2", "data.num_workers=1"]), tmp_path / "cut", progress=False)
    resumed = run(make_recipe([*sets, "train.steps=4"]), tmp_path / "cut", resume=True, progress=False)
    assert resumed.step == 4
    for name in ("model", "loss", "ema"):
        full, cut = _weights(tmp_path / "full", 4, name), _weights(tmp_path / "cut", 4, name)
        assert full.keys() == cut.keys()
        for key in full:
            assert torch.equal(full[key], cut[key]), f"{name}: {key} differs after resume"
    assert any(not torch.equal(v, _weights(tmp_path / "cut", 2)[k]) for k, v in _weights(tmp_path / "cut", 4).items())
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4], steps


def test_stage2_freezes_the_encoder_bit_for_bit(tmp_path, fast_sets, make_recipe) -> None:
    import vidtok_kit

    run(make_recipe([*fast_sets, "train.steps=2"]), tmp_path / "stage1", progress=False)
    stage2 = [*fast_sets, "train.steps=2", "train.lr=1e-3", "train.resolution=48", 'train.frozen=["encoder"]',
              f"train.init_from={json.dumps(str(tmp_path / 'stage1'))}"]
    run(make_recipe(stage2), tmp_path / "stage2", progress=False)
    w1, w2 = _weights(tmp_path / "stage1", 2), _weights(tmp_path / "stage2", 2)
    encoder = [k for k in w1 if k.startswith("encoder.")]
    assert encoder and all(torch.equal(w1[k], w2[k]) for k in encoder)
    assert any(not torch.equal(w1[k], w2[k]) for k in w1 if k.startswith("decoder."))
    model = vidtok_kit.load(None, checkpoint=tmp_path / "stage2" / "checkpoints" / "step_00000002" / "model.safetensors")
    assert torch.equal(model.model.state_dict()["decoder.conv_out.conv.weight"], w2["decoder.conv_out.conv.weight"])


def test_unknown_frozen_prefix_is_one_line(tmp_path, fast_sets, make_recipe) -> None:
    from vidtok_kit.errors import RecipeError

    with pytest.raises(RecipeError, match="'encodr' matches no parameter.*encoder"):
        Trainer(make_recipe([*fast_sets, 'train.frozen=["encodr"]']), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_non_finite_loss_steps_are_skipped_and_counted(tmp_path, fast_sets, make_recipe) -> None:
    # logvar = -1000 makes nll = rec * e^1000 = inf: a real non-finite loss, not an injected one
    recipe = make_recipe([*fast_sets, "train.steps=2", "train.loss.logvar_init=-1000.0", "train.max_bad_steps=5"])
    trainer = Trainer(recipe, tmp_path / "run", progress=False)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    assert trainer.bad_steps == 2
    assert trainer.metrics.records[-1]["bad_steps"] == 2.0
    saved = _weights(tmp_path / "run", 2)
    assert all(torch.equal(saved[k], initial[k]) for k in initial)  # no update reached the weights


def test_a_run_that_keeps_producing_nans_stops_clearly(tmp_path, fast_sets) -> None:
    from vidtok_kit.cli import cli
    from vidtok_kit.train.commands import train_command

    cli.add_command(train_command)
    sets = [*fast_sets, "train.steps=6", "train.loss.logvar_init=-1000.0", "train.max_bad_steps=3"]
    args = ["train", str(TINY), "--out", str(tmp_path / "run"), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: the loss was NaN/inf for 3 consecutive steps (up to step 3)"), result.output
    assert "no checkpoint was written" in message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_existing_run_needs_resume(tmp_path, fast_sets, make_recipe) -> None:
    from vidtok_kit.cli import cli
    from vidtok_kit.train.commands import train_command

    run(make_recipe([*fast_sets, "train.steps=1"]), tmp_path / "run", progress=False)
    cli.add_command(train_command)
    result = CliRunner().invoke(cli, ["train", str(TINY), "--out", str(tmp_path / "run"), "--data", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "pass --resume" in result.output
    result = CliRunner().invoke(cli, ["train", str(TINY), "--out", str(tmp_path / "other"), "--data", str(tmp_path / "nope")])
    assert result.exit_code == 1 and result.output.strip().endswith("no such file or folder (expected a video, a folder of videos, a .csv/.txt list or builtin:samples)")
    changed = [*fast_sets, "train.steps=2", "model.z_channels=8"]
    with pytest.raises(Exception, match="cannot resume, the recipe changed in model.z_channels"):
        run(make_recipe(changed), tmp_path / "run", resume=True, progress=False)


def test_perceptual_loss_without_weights_says_what_to_do(tmp_path, fast_sets, make_recipe, monkeypatch) -> None:
    from vidtok_kit.losses import ENV_LPIPS_WEIGHTS, ENV_VGG16_WEIGHTS, LPIPSWeightsError

    monkeypatch.delenv(ENV_VGG16_WEIGHTS, raising=False)
    monkeypatch.delenv(ENV_LPIPS_WEIGHTS, raising=False)
    with pytest.raises(LPIPSWeightsError) as err:
        Trainer(make_recipe([*fast_sets, "train.loss.perceptual_weight=1.0"]), tmp_path / "run", progress=False)
    assert "\n" not in str(err.value)
    assert "train.loss.vgg_weights" in str(err.value) and "perceptual_weight=0" in str(err.value)


def test_stage_recipes_extend_released_ones_and_stage2_freezes_the_encoder(repo_root) -> None:
    from vidtok_kit import load_recipe

    for family, released in (("fsq_488", "fsq_488.toml"), ("kl_488_4ch", "vidtok/vidtok_kl_causal_488_4chn.toml")):
        base = load_recipe(repo_root / "recipes" / released)
        one = load_recipe(repo_root / "recipes" / "stages" / f"{family}_stage1.toml")
        two = load_recipe(repo_root / "recipes" / "stages" / f"{family}_stage2.toml")
        assert one.model == two.model == base.model
        assert one.train.frozen == () and two.train.frozen == ("encoder",)
        assert two.train.resolution > one.train.resolution
        assert two.train.init_from == f"runs/{one.name}"  # stage 1's default run directory
