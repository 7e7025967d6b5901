import gzip

import numpy as np
import pytest

from iglp_vw.sim import GroundedSimulation, load_dataset, run
from iglp_vw import IGLP


def _write_covtype(path, rows=300, seed=0, bad_class=False):
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.integers(0, 4000, (rows, 10)), rng.integers(0, 2, (rows, 44))])
    y = rng.integers(1, 8, rows)
    if bad_class:
        y[17] = 9
    with gzip.open(path, "wt") as fh:
        for xi, yi in zip(X, y):
            fh.write(",".join(map(str, xi)) + f",{yi}\n")
    return y


def test_covertype_from_local_file(tmp_path):
    y = _write_covtype(tmp_path / "covtype.data.gz")
    X, labels = load_dataset("covertype", path=tmp_path / "covtype.data.gz")
    assert X.shape == (300, 54) and np.abs(X).max() <= 1.0
    assert (labels == y - 1).all()
    sim = GroundedSimulation(X, labels, n_users=10, n_words=10, passes=1, seed=0)
    frame = run(IGLP(7, seed=0), sim, seed=0, limit=100)
    assert len(frame) == 100


def test_covertype_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="needs `path`"):
        load_dataset("covertype")
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset("covertype", path=tmp_path / "missing.data")
    _write_covtype(tmp_path / "bad.data.gz", bad_class=True)
    with pytest.raises(ValueError, match=r"bad\.data\.gz.*line 18"):
        load_dataset("covertype", path=tmp_path / "bad.data.gz")
    (tmp_path / "narrow.data").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="narrow.data: expected 55"):
        load_dataset("covertype", path=tmp_path / "narrow.data")
