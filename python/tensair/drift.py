"""Drift detectors outside a job, River-style (docs/python.md, docs/drift.md):

    from tensair.drift import OPTWIN
    d = OPTWIN(rho=0.5)
    for i, loss in enumerate(losses):
        if d.update(loss):
            print("drift at", i)

The detectors are TensAIR's C++ detectors: fed the same values with the same parameters they
report what `tensair detect` and the drift_detector operator report. Parameters are the keys
of docs/drift.md (input = "loss" | "error" | "correct", direction = "increase" | "decrease" |
"both", and each detector's own).
"""
from ._tensair import Detector as _Native


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Detector:
    """One detector by name ("optwin", "adwin", "page-hinkley") and parameters."""

    def __init__(self, name, **params):
        self._name = name
        self._given = dict(params)
        self._native = _Native(name, {k: _text(v) for k, v in params.items()})
        self.drift_detected = False
        self.n_detections = 0

    def update(self, x):
        """Feeds one value; returns (and keeps in drift_detected) whether a drift was found at
        it. Raises tensair.DataError for a NaN, an infinity, or an indicator other than 0/1."""
        self.drift_detected = self._native.update(float(x))
        if self.drift_detected:
            self.n_detections += 1
        return self.drift_detected

    def reset(self):
        """Forgets every value (the parameters stay)."""
        self._native.reset()
        self.drift_detected = False

    @property
    def name(self):
        return self._native.name

    @property
    def params(self):
        """The effective parameters, defaults included."""
        return self._native.params

    @property
    def state(self):
        """The detector's state (window size, means, "values", "detections", ...)."""
        return self._native.state

    def __getstate__(self):
        return {"name": self._name, "params": self._given, "state": self._native.save_state(),
                "drift_detected": self.drift_detected, "n_detections": self.n_detections}

    def __setstate__(self, s):
        Detector.__init__(self, s["name"], **s["params"])
        self._native.load_state(s["state"])
        self.drift_detected = s["drift_detected"]
        self.n_detections = s["n_detections"]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._given.items())
        return f"{type(self).__name__}({args})"


class OPTWIN(Detector):
    """OPTWIN (Tosi & Theobald 2023): optimal window split by t- and F-tests."""

    def __init__(self, **params):
        super().__init__("optwin", **params)


class ADWIN(Detector):
    """ADWIN (Bifet & Gavaldà 2007): adaptive windowing with Hoeffding-style bounds."""

    def __init__(self, **params):
        super().__init__("adwin", **params)


class PageHinkley(Detector):
    """The Page-Hinkley test (Page 1954): cumulative deviation from the running mean."""

    def __init__(self, **params):
        super().__init__("page-hinkley", **params)
