"""Latency of the iris model's predict(), measured by pytest-benchmark for `mlgate bench`.

Run from examples/iris:
    python -m pytest benchmarks --benchmark-json=.mlgate/benchmark.json
Rounds are capped so the whole run takes a few seconds; the gate judges the recorded rounds.
"""

import model
import numpy as np
import pytest

# Enough rounds for stable percentiles, few enough to keep the run short.
ROUNDS = 200
# Inner calls per round: one predict() takes tens of microseconds, so a single call per round
# would mostly measure the timer.
ITERATIONS = 5


@pytest.fixture(scope="module")
def fitted():
    train_x, test_x, train_y, _ = model.split()
    return model.train(train_x, train_y), test_x


def test_predict_one_row(benchmark, fitted):
    trained, test_x = fitted
    row = test_x[:1]
    result = benchmark.pedantic(
        model.predict, args=(trained, row), rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=5
    )
    assert result.shape == (1,)


def test_predict_batch_of_100(benchmark, fitted):
    trained, test_x = fitted
    # The held-out split has 45 rows; tile it to a batch of 100.
    batch = np.resize(test_x, (100, test_x.shape[1]))
    result = benchmark.pedantic(
        model.predict, args=(trained, batch), rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=5
    )
    assert result.shape == (100,)
