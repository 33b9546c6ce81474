"""``vidtok-kit profile``: parameter counts of all 23 released configs and the paper's MAC counts.

Counts run on the meta device (nothing is computed). The parameter totals must equal the element
counts of the reference's checkpoint layouts exactly; MACs must reproduce the numbers the reference
measured with FlopCounterMode on the original code (the paper's "10.35 TFLOPs" are MACs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidtok_kit.cli import cli

REPO = Path(__file__).resolve().parents[1]
LAYOUT_DIR = REPO.parent / "shared" / "spec" / "checkpoint-layouts"
LAYOUTS = sorted(p.stem for p in LAYOUT_DIR.glob("*.json"))


def _profile(recipe: str, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["profile", str(REPO / "recipes" / "vidtok" / f"{recipe}.toml"), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("name", LAYOUTS)
def test_params_total_equals_the_checkpoint_layout(name: str, shared_spec: Path, fresh_cli: None) -> None:
    layout = json.loads((shared_spec / "checkpoint-layouts" / f"{name}.json").read_text())
    report = _profile(name)
    params = report["params"]
    assert params["total"] == layout["num_elements"]
    assert params["encoder"] + params["decoder"] + params["regularizer"] == params["total"]
    assert params["regularizer"] == 0  # the reference: "the regulariser never has parameters"


# reference §5 [measured]: MACs at batch 1, causal 17x256x256 / non-causal 16x256x256
PAPER_MACS = [
    ("vidtok_kl_causal_488_4chn", "17,256,256", 10.35e12),
    ("vidtok_fsq_causal_488_262144", "17,256,256", 10.35e12),
    ("vidtok_kl_causal_41616_4chn", "17,256,256", 10.70e12),
    ("vidtok_kl_causal_288_8chn", "17,256,256", 10.38e12),
    ("vidtok_kl_causal_444_4chn", "17,256,256", 16.59e12),
    ("vidtok_kl_noncausal_488_4chn", "16,256,256", 8.28e12),
    ("vidtok_kl_noncausal_41616_4chn", "16,256,256", 8.56e12),
]


@pytest.mark.parametrize(("name", "shape", "macs"), PAPER_MACS, ids=[p[0] for p in PAPER_MACS])
def test_macs_match_the_reference(name: str, shape: str, macs: float, fresh_cli: None) -> None:
    report = _profile(name, "--shape", shape)
    assert abs(report["macs"] - macs) / macs < 0.005, report["macs"]
    assert report["flops"] == 2 * report["macs"] or report["flops"] == 2 * report["macs"] + 1
    assert report["shape"] == [int(v) for v in shape.split(",")]


def test_headline_number_at_the_default_shape(fresh_cli: None) -> None:
    # the default shape is the recipe's frames at 256x256: 17x256x256 for the causal v1.0 models
    report = _profile("vidtok_kl_causal_488_4chn")
    assert report["shape"] == [17, 256, 256] and report["latent_shape"] == [1, 4, 5, 32, 32]
    assert abs(report["macs"] / 1e12 - 10.35) / 10.35 < 0.005
    # reference: encoder 5.824 TFLOPs, decoder 14.867 TFLOPs
    assert abs(report["macs_encoder"] * 2 / 5.824e12 - 1) < 0.005
    assert abs(report["macs_decoder"] * 2 / 14.867e12 - 1) < 0.005


def test_profile_rejects_an_impossible_shape(fresh_cli: None) -> None:
    result = CliRunner().invoke(cli, ["profile", str(REPO / "recipes" / "vidtok" / "vidtok_kl_causal_488_4chn.toml"), "--shape", "16,256,256"])
    assert result.exit_code == 1
    assert "takes 1 + 4k frames (1, 5, 9, ...), got 16" in result.output
    assert len(result.output.strip().splitlines()) == 1
