import model
import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained():
    train_x, test_x, train_y, test_y = model.split()
    return model.train(train_x, train_y), test_x, test_y


def test_holdout_accuracy(trained):
    fitted, test_x, test_y = trained
    accuracy = (model.predict(fitted, test_x) == test_y).mean()
    assert accuracy >= 0.9


def test_predicts_one_known_class_per_row(trained):
    fitted, test_x, _ = trained
    predictions = model.predict(fitted, test_x[:5])
    assert predictions.shape == (5,)
    assert set(predictions) <= {0, 1, 2}


def test_training_is_deterministic(trained):
    fitted, test_x, _ = trained
    train_x, _, train_y, _ = model.split()
    again = model.train(train_x, train_y)
    assert (model.predict(again, test_x) == model.predict(fitted, test_x)).all()


@pytest.mark.parametrize("rows", [np.zeros((2, 3)), np.zeros(4), np.full((1, 4), np.nan)])
def test_rejects_malformed_input(trained, rows):
    fitted, _, _ = trained
    with pytest.raises(ValueError):
        model.predict(fitted, rows)
