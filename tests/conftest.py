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


# ---------------------------------------------------------------- the fast path (pytest -m fast)
# Modules whose tests need no VW; with the tests that ask for `no_vw`, they are marked `fast`.
FAST_MODULES = {"test_reward.py", "test_decoder.py", "test_logs.py", "test_fast.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in FAST_MODULES or "no_vw" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fast)


def _refuse_vw(*args, **kwargs):
    raise AssertionError("a test marked fast started a VW workspace: use the no_vw fixture's fakes")


@pytest.fixture(autouse=True)
def _fast_tests_use_no_vw(request, monkeypatch):
    """A test marked fast that starts a VW workspace fails: the mark says what it needs."""
    if request.node.get_closest_marker("fast"):
        import iglp_vw.cb
        import iglp_vw.ik

        monkeypatch.setattr(iglp_vw.ik, "Workspace", _refuse_vw)
        monkeypatch.setattr(iglp_vw.cb, "Workspace", _refuse_vw)


@pytest.fixture
def no_vw(monkeypatch):
    """IGLP with the fakes of tests/fakes.py for its CB and IK: ``no_vw(**params)`` builds one."""
    import iglp_vw.learner
    from iglp_vw import IGLP
    from tests.fakes import CountingIK, FakeCB

    monkeypatch.setattr(iglp_vw.learner, "_IK", {"slot": CountingIK, "features": CountingIK})
    monkeypatch.setattr(iglp_vw.learner, "ActionFeatureIK", CountingIK)  # the guessing IK of mixed groups
    monkeypatch.setattr(iglp_vw.learner, "WorkspaceCB", FakeCB)
    return lambda *args, **params: IGLP(*args, **params)
