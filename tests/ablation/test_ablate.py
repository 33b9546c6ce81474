"""``vidtok-kit ablate``: Table 2 params/MACs against the paper, a short tiny training suite with its
table and chart, resuming, two-stage chaining with a frozen encoder, and suite errors.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
ARCH = REPO / "recipes" / "ablations" / "architecture"
TINY = REPO / "recipes" / "tiny" / "ablations"

# VidTok (arXiv:2412.13061) Table 2: params (M) and "FLOPs" (= MACs, T) at 17x256x256
#: in-process data loading: worker processes cost more than they save for 2 steps of 32x32 clips
FAST = ("--set", "data.num_workers=0", "--set", "train.lr=1e-3")

PAPER_TABLE2 = {
    "variant1_fully_3d": (245, 16.98),
    "variant2_no_alphablender": (142, 7.17),
    "variant3_no_3d": (126, 10.18),
    "full_model": (157, 10.35),
}


def _ablate(*args: object):
    from vidtok_kit import cli as cli_module

    cli_module._STATE.clear()
    cli_module._add_subsystem_commands()
    return CliRunner().invoke(cli_module.cli, ["ablate", *map(str, args)])


def _csv(path: Path) -> dict[str, dict[str, str]]:
    return {row["name"]: row for row in csv.DictReader(path.open())}


def test_architecture_variants_match_the_papers_params_and_macs_within_5_percent(tmp_path: Path) -> None:
    result = _ablate(ARCH, "--profile-only", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    rows = _csv(tmp_path / "results.csv")
    assert set(rows) == set(PAPER_TABLE2)
    for name, (params_m, macs_t) in PAPER_TABLE2.items():
        ours_params, ours_macs = float(rows[name]["params"]) / 1e6, float(rows[name]["macs"]) / 1e12
        assert ours_params == pytest.approx(params_m, rel=0.05), name
        assert ours_macs == pytest.approx(macs_t, rel=0.05), name
        # the printed table carries both numbers
        assert f"{ours_params:.2f} | {params_m:.2f}" in result.output
    assert "| Variant 2 (w/o AlphaBlender) |" in result.output  # labels come from the suite file
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("ablate")
    result = _ablate(TINY, "--steps", 2, "--shape", "9,32,32", "-o", out, *FAST)
    return out, result


def test_tiny_suite_trains_evaluates_and_writes_table_csv_chart(tiny_suite: tuple[Path, object]) -> None:
    out, result = tiny_suite
    assert result.exit_code == 0, result.output
    rows = _csv(out / "results.csv")
    assert set(rows) == {"full_model", "variant1_fully_3d", "variant2_no_alphablender", "variant3_no_3d"}
    for name, row in rows.items():
        stored = json.loads((out / "runs" / name / "result.json").read_text())
        assert stored["train"]["steps"] == 2 and stored["train"]["losses"]
        assert Path(stored["train"]["checkpoint"]).is_file()
        assert stored["eval"]["clips"] == 1 and stored["eval"]["video"].endswith("bikes.mp4")  # never trained on
        assert 0 < float(row["psnr"]) < 60 and -1 <= float(row["ssim"]) <= 1
    # the variants really differ: fully 3-D has the most parameters, w/o AlphaBlender the fewest MACs
    params = {n: int(r["params"]) for n, r in rows.items()}
    macs = {n: int(r["macs"]) for n, r in rows.items()}
    assert max(params, key=params.get) == "variant1_fully_3d"
    assert min(macs, key=macs.get) == "variant2_no_alphablender"
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 5 and "PSNR" in table and "SSIM" in table
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_interrupted_after_training_resumes_from_its_checkpoint(tiny_suite: tuple[Path, object]) -> None:
    out, _ = tiny_suite
    stored = out / "runs" / "variant2_no_alphablender" / "result.json"
    before = json.loads(stored.read_text())
    stored.unlink()  # killed after its checkpoint, before its result
    result = _ablate(TINY, "--steps", 2, "--shape", "9,32,32", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    assert result.output.count("done before, skipped") == 3
    after = json.loads(stored.read_text())
    assert after["train"]["checkpoint"] == before["train"]["checkpoint"]  # the step-2 checkpoint, not retrained
    assert len(list((out / "runs" / "variant2_no_alphablender" / "train" / "checkpoints").iterdir())) == 1
    assert after["eval"]["metrics"]["psnr"] == pytest.approx(before["eval"]["metrics"]["psnr"], abs=1e-6)


def test_rerun_resumes_and_recomputes_only_missing_results(tmp_path: Path) -> None:
    args = ("--profile-only", "--shape", "9,32,32", "-o", tmp_path)
    assert _ablate(TINY, *args).exit_code == 0
    before = {p.parent.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/result.json")}
    (tmp_path / "runs" / "variant3_no_3d" / "result.json").unlink()  # as if interrupted during that run
    result = _ablate(TINY, *args)
    assert result.exit_code == 0, result.output
    assert result.output.count("done before, skipped") == 3
    after = {p.parent.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/result.json")}
    assert {n for n in after if after[n] == before.get(n)} == {"full_model", "variant1_fully_3d", "variant2_no_alphablender"}
    assert len(_csv(tmp_path / "results.csv")) == 4
    # a different request (here: other MAC shape) does not reuse results
    result = _ablate(TINY, "--profile-only", "--shape", "5,16,16", "-o", tmp_path)
    assert result.exit_code == 0 and "done before" not in result.output
    assert all(json.loads(p.read_text())["profile"]["shape"] == [5, 16, 16] for p in (tmp_path / "runs").glob("*/result.json"))


def test_two_stage_run_starts_from_stage_one_with_the_encoder_frozen(tmp_path: Path) -> None:
    tiny = REPO / "recipes" / "tiny" / "kl_causal.toml"
    (tmp_path / "stage1.toml").write_text(f'extends = "{tiny}"\nname = "s1"\n')
    (tmp_path / "stage2.toml").write_text(f'extends = "{tiny}"\nname = "s2"\n[train]\nfrozen = ["encoder"]\n')
    (tmp_path / "suite.toml").write_text(
        'title = "two stages"\n'
        '[[run]]\nrecipe = "stage1.toml"\ntable = false\n'
        '[[run]]\nrecipe = "stage2.toml"\nlabel = "stage 2"\ninit_from = "stage1"\n'
    )
    out = tmp_path / "out"
    result = _ablate(tmp_path / "suite.toml", "--steps", 2, "--shape", "9,32,32", "-o", out,
                     "--set", "data.num_workers=0", "--set", "train.lr=1e-2")
    assert result.exit_code == 0, result.output
    ckpt = {n: json.loads((out / "runs" / n / "result.json").read_text())["train"]["checkpoint"] for n in ("stage1", "stage2")}
    s1, s2 = load_file(ckpt["stage1"]), load_file(ckpt["stage2"])
    enc = [k for k in s1 if k.startswith("encoder.")]
    dec = [k for k in s1 if k.startswith("decoder.")]
    assert enc and all(torch.equal(s1[k], s2[k]) for k in enc)
    assert any(not torch.equal(s1[k], s2[k]) for k in dec)
    assert "stage 2" in (out / "results.md").read_text() and "| stage1 |" not in (out / "results.md").read_text()


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ('[[run]]\nrecipe = "r.toml"\nlables = "x"\n', "unknown keys ['lables']"),
        ('[[run]]\nrecipe = "r.toml"\ninit_from = "later"\n[[run]]\nrecipe = "r.toml"\nname = "later"\n', "must name an earlier run"),
        ('[[run]]\nrecipe = "nope.toml"\n', "recipe nope.toml not found"),
        ('[[run]]\nrecipe = "r.toml"\npaper = { psnr = "high" }\n', "paper: bad keys or non-numbers ['psnr']"),
        ('title = "nothing"\n', "at least one [[run]]"),
    ],
)
def test_bad_suite_is_one_line_error(tmp_path: Path, suite: str, message: str) -> None:
    (tmp_path / "r.toml").write_text(f'extends = "{REPO / "recipes" / "tiny" / "kl_causal.toml"}"\n')
    (tmp_path / "s.toml").write_text(suite)
    result = _ablate(tmp_path / "s.toml", "--profile-only", "-o", tmp_path / "out")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
