"""The one reader of data files (mlgate.tabular) that the drift and quality stages share: real CSV
and Parquet files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgate import evidence as ev
from mlgate import tabular


def sample() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "x": rng.normal(size=50) * 1e3,
            "n": rng.integers(0, 5, 50),
            "c": rng.choice(["a", "b"], 50),
        }
    )


def test_csv_and_parquet_read_to_the_same_frame_with_the_file_pinned(tmp_path: Path) -> None:
    data = sample()
    data.to_csv(tmp_path / "d.csv", index=False)
    data.to_parquet(tmp_path / "d.parquet", index=False)
    csv = tabular.read(tmp_path / "d.csv", "data", "d.csv")
    parquet = tabular.read(tmp_path / "d.parquet", "data")
    assert (csv.format, parquet.format) == ("csv", "parquet")
    # Every decimal parsed to the nearest double: the same numbers from either format.
    pd.testing.assert_frame_equal(csv.frame, parquet.frame)
    assert csv.shown == "d.csv" and parquet.shown == str(tmp_path / "d.parquet")
    assert csv.sha256 == ev.sha256_file(tmp_path / "d.csv")
    assert csv.size == (tmp_path / "d.csv").stat().st_size


def test_parquet_is_known_by_its_magic_bytes_whatever_its_name(tmp_path: Path) -> None:
    sample().to_parquet(tmp_path / "current.data", index=False)
    table = tabular.read(tmp_path / "current.data", "current")
    assert table.format == "parquet"
    assert list(table.frame.columns) == ["x", "n", "c"]


def unreadable(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "blank.csv").write_text("\n\n")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    (tmp_path / "latin1.csv").write_bytes("name\nJos\xe9\n".encode("latin-1"))
    (tmp_path / "folder").mkdir()
    return {
        "missing": (tmp_path / "missing.csv", "data file {} does not exist"),
        "directory": (tmp_path / "folder", "data {} is a directory, not a CSV or Parquet file"),
        "empty": (tmp_path / "empty.csv", "data file {} is empty"),
        "blank lines": (tmp_path / "blank.csv", "data file {} holds no columns"),
        "no rows": (tmp_path / "header.csv", "data file {} has no rows"),
        "not parquet": (tmp_path / "broken.parquet", "cannot read data {} as parquet: "),
        "not UTF-8": (tmp_path / "latin1.csv", "data file {} is not UTF-8 text"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "directory", "empty", "blank lines", "no rows", "not parquet", "not UTF-8"],
)
def test_an_unreadable_file_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    path, message = unreadable(tmp_path)[case]
    with pytest.raises(tabular.TableError) as raised:
        tabular.read(path, "data", path.name)
    reason = str(raised.value)
    assert reason.startswith(message.format(path.name)), reason
    assert "\n" not in reason
