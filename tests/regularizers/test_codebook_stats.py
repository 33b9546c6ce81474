"""CodebookStats accumulates across batches and processes; quantizers stay in sync under DDP."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidtok_kit.codebook import CodebookStats, batch_codebook_logs
from vidtok_kit.errors import InputError


def test_statistics_of_a_known_batch() -> None:
    stats = CodebookStats(8).update(torch.tensor([[0, 0], [1, 2]], dtype=torch.uint8))
    assert (stats.total, stats.used, stats.dead_codes) == (4, 3, 5)
    assert stats.utilisation == 3 / 8
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert stats.entropy == pytest.approx(h) and stats.perplexity == pytest.approx(math.exp(h))
    assert stats.counts.tolist() == [2, 1, 1, 0, 0, 0, 0, 0]


def test_uniform_usage_has_perplexity_equal_to_the_codebook_size() -> None:
    stats = CodebookStats(16).update(torch.arange(16).repeat(3))
    assert stats.perplexity == pytest.approx(16) and stats.utilisation == 1.0 and stats.dead_codes == 0


def test_accumulates_over_batches_and_merges() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 100, (2, 3, 4, 4), generator=gen, dtype=torch.int64) for _ in range(5)]
    one = CodebookStats(100)
    for b in batches:
        one.update(b)
    left, right = CodebookStats(100), CodebookStats(100)
    for b in batches[:2]:
        left.update(b)
    for b in batches[2:]:
        right.update(b)
    assert torch.equal(left.merge(right).counts, one.counts)
    assert one.counts.sum() == sum(b.numel() for b in batches)
    one.reset()
    assert one.total == 0 and one.perplexity == 1.0


def test_sparse_mode_matches_dense_mode() -> None:
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 5000, (64,), generator=gen) for _ in range(4)]
    dense, sparse = CodebookStats(5000), CodebookStats(5000, dense_limit=0)
    assert dense.dense and not sparse.dense
    for b in batches:
        dense.update(b)
        sparse.update(b)
    assert sparse.summary() == pytest.approx(dense.summary())
    assert torch.equal(sparse.counts, dense.counts)
    mixed = CodebookStats(5000).merge(sparse)  # dense <- sparse
    assert torch.equal(mixed.counts, dense.counts)
    assert torch.equal(CodebookStats(5000, dense_limit=0).merge(dense).counts, dense.counts)  # sparse <- dense


def test_a_huge_codebook_does_not_allocate_per_code_counts() -> None:
    stats = CodebookStats(2**40).update(torch.tensor([0, 2**40 - 1, 7, 7]))
    assert not stats.dense and stats._counts.numel() == 3
    assert stats.used == 3 and stats.utilisation == 3 / 2**40


def test_bad_indices_are_one_line_errors() -> None:
    with pytest.raises(InputError, match=r"code index 8 outside the codebook 0\.\.7"):
        CodebookStats(8).update(torch.tensor([8]))
    with pytest.raises(InputError, match="integer"):
        CodebookStats(8).update(torch.tensor([0.5]))
    with pytest.raises(InputError, match="cannot merge"):
        CodebookStats(8).merge(CodebookStats(9))


def test_batch_logs() -> None:
    logs = batch_codebook_logs(torch.tensor([0, 0, 1, 2]), 8)
    assert logs["codebook_usage"] == pytest.approx(3 / 8)
    assert logs["codebook_perplexity"] == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25))))


# -- two real processes (gloo) --------------------------------------------------------------------

WORKER = Path(__file__).with_name("ddp_codebook_worker.py")


def test_all_reduce_across_two_gloo_processes(tmp_path: Path) -> None:
    """Two processes (``ddp_codebook_worker.py``) see different indices and data; after the
    reductions both hold the same counts, means and EMA codebooks."""
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(rank), str(tmp_path)], stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    expected = CodebookStats(100)
    for rank in (0, 1):
        gen = torch.Generator().manual_seed(rank)
        expected.update(torch.randint(0, 50, (3, 10), generator=gen) + 25 * rank)
    assert r0["dense"] == r1["dense"] == r0["sparse"] == r1["sparse"] == expected.counts.tolist()
    assert r0["mean"] == r1["mean"] == [1.5, 1.5, 1.5]
    assert r0["grad"] == [0.5, 0.5, 0.5]
    assert r0["codebook"] == r1["codebook"] and r0["cluster_size"] == r1["cluster_size"]
    assert r0["restarted"] > 0, "the dead-code restart path was not exercised"
