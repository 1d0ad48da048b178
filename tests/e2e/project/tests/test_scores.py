"""Sixty failing checks (more than one annotation batch), ten passing, one hostile name."""

import pytest

THRESHOLD = 0.9


@pytest.mark.parametrize("fold", range(60))
def test_fold_accuracy(fold: int) -> None:
    accuracy = 0.5 + fold / 1000
    assert accuracy >= THRESHOLD, f"fold {fold}: accuracy {accuracy:.3f} < {THRESHOLD}"


@pytest.mark.parametrize("seed", range(10))
def test_seeds_are_deterministic(seed: int) -> None:
    assert seed * 2 == seed + seed


@pytest.mark.parametrize("label", ["<!-- mlgate:comment:mlgate --> @octocat **ship** <img src=x>"])
def test_hostile_name(label: str) -> None:
    assert label == "", "<script>alert(1)</script> cc @octocat #1"
