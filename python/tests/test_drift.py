"""tensair.drift: the detectors outside a job equal `tensair detect` on the same values."""
import pickle
import subprocess

import numpy as np
import pytest

import tensair
from tensair.drift import ADWIN, OPTWIN, PageHinkley


def stream(seed=2):
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0.3, 0.05, 1500), rng.normal(0.6, 0.05, 1500),
             rng.normal(0.2, 0.05, 1500), rng.normal(0.9, 0.1, 1500)]
    return np.concatenate(parts)


CASES = [(OPTWIN, "optwin", {"rho": 0.5}), (ADWIN, "adwin", {"delta": 0.002}),
         (PageHinkley, "page-hinkley", {"threshold": 5})]


@pytest.mark.parametrize("cls,name,params", CASES)
def test_detections_equal_the_cli(tmp_path, cli, cls, name, params):
    values = stream()
    path = tmp_path / "values.txt"
    path.write_text("".join(f"{v!r}\n" for v in values.tolist()))
    cmd = [cli, "detect", "--detector", name, str(path)]
    for k, v in params.items():
        cmd += ["--param", f"{k}={v}"]
    by_cli = [int(l) for l in subprocess.run(cmd, check=True, capture_output=True,
                                             text=True).stdout.split()]
    d = cls(**params)
    ours = [i for i, v in enumerate(values) if d.update(v)]
    assert ours == by_cli
    assert len(ours) >= 1
    assert d.state["values"] == len(values)


def test_pickled_detector_goes_on_as_the_original():
    values = stream(5)
    a = OPTWIN(rho=0.5)
    for v in values[:2000]:
        a.update(v)
    b = pickle.loads(pickle.dumps(a))
    assert b.params == a.params and b.state == a.state
    assert [a.update(v) for v in values[2000:]] == [b.update(v) for v in values[2000:]]
    assert a.drift_detected == b.drift_detected


def test_bad_values_and_parameters_raise_with_one_line():
    with pytest.raises(tensair.ConfigError, match='unknown parameter "rhoo" for optwin'):
        OPTWIN(rhoo=1)
    d = ADWIN(input="error")
    with pytest.raises(tensair.DataError, match="0 or 1"):
        d.update(0.5)
    with pytest.raises(tensair.DataError):
        OPTWIN().update(float("nan"))
