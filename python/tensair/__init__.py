"""TensAIR from Python: build, run and watch TensAIR jobs; models as torch.nn.Module.

    import tensair
    job = tensair.Job("quickstart")
    job.add("gen", "python_source", fn=records)
    job.add("model", "model", network=my_module, inputs={"train": "gen"})
    result = job.run()

See docs/python.md. The engine is C++ (the _tensair extension module); this package turns
Python values into job-file values and back.
"""
import atexit as _atexit

# torch first: the engine's LibTorch is the one python3-torch loads.
import torch as _torch  # noqa: F401

from . import _tensair
from ._tensair import ConfigError, DataError, Error, IoError, ModelError, TransportError
from ._run import Result
from .job import Job
from . import drift

__version__ = "0.1.0"
__all__ = ["Job", "Result", "drift", "operator_types", "Error", "ConfigError", "IoError",
           "TransportError", "DataError", "ModelError", "__version__"]


def operator_types():
    """[(name, description)] of every operator type a job may use (`tensair operators`)."""
    return list(_tensair.operator_types())


_atexit.register(_tensair.finalize_mpi)
