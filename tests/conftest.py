import pytest

from iglp_vw.sim import GroundedSimulation, load_dataset


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture
def context():
    return {"User": {"id": "u17"}, "x": {"f0": 0.31, "f5": 1.0}}


@pytest.fixture
def actions():
    return [{"Action": {"id": str(k)}} for k in range(10)]


def small_sim(digits, passes=2, seed=0, **kw):
    X, y = digits
    return GroundedSimulation(X, y, passes=passes, seed=seed, **kw)
