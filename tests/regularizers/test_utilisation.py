"""VidTok Table 3, qualitatively, on real video: FSQ uses most of its codebook, plain VQ few codes.

Runs ``benchmarks/regularizers.py`` (the same loop that prints the numbers) for a short time: a tiny
conv autoencoder per regularizer, 512-code codebooks, 100 Adam steps on the sample videos.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "regularizers.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vidtok_kit_benchmark_regularizers", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, float]]:
    bench = _benchmark()
    return bench.run(["fsq", "vq", "vq+ema+restart"], steps=100, seed=0)


def test_fsq_uses_most_of_its_codebook_and_plain_vq_few_codes(results: dict[str, dict[str, float]]) -> None:
    fsq, vq = results["fsq"], results["vq"]
    assert fsq["utilisation"] > 0.4, results
    assert vq["utilisation"] < 0.1, results
    assert fsq["perplexity"] > 10 * vq["perplexity"], results
    assert fsq["recon_l1"] < vq["recon_l1"], results


def test_ema_and_dead_code_restart_rescue_vq(results: dict[str, dict[str, float]]) -> None:
    tricks, vq = results["vq+ema+restart"], results["vq"]
    assert tricks["utilisation"] > 0.5 > vq["utilisation"], results
    assert tricks["recon_l1"] < vq["recon_l1"], results


def test_statistics_are_consistent(results: dict[str, dict[str, float]]) -> None:
    for name, r in results.items():
        assert r["codebook_size"] == 512, name
        assert r["used"] + r["dead_codes"] == 512, name
        assert 1.0 <= r["perplexity"] <= r["used"] + 1e-6, name
        assert r["tokens"] == 11 * 8 * 8 * 8, name  # 11 clips of 16 frames -> 8x8x8 tokens each
