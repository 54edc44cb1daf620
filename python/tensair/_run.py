"""Job.run and Job.validate: the Python values of a job turned into job-file values, the C++
engine run, the trained weights read back (docs/python.md)."""
import itertools
import json
import os
import signal
import sys
import tempfile

from . import _network, _schema
from . import _tensair

_LAUNCHER_RANK = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")
_LAUNCHER_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS")
_PYTHON_TYPES = ("python_source", "python_sink", "python_map", "python_filter")


def launcher():
    """(rank, ranks) as mpirun/srun announced them (0, 1 without a launcher)."""
    def first(names, default):
        for n in names:
            if os.environ.get(n):
                return int(os.environ[n])
        return default
    return first(_LAUNCHER_RANK, 0), first(_LAUNCHER_SIZE, 1)


def _comm():
    """mpi4py's COMM_WORLD under a launcher with several ranks (None otherwise): rank 0 writes
    the job's files and the others wait for them."""
    rank, world = launcher()
    if world <= 1:
        return None
    from mpi4py import MPI  # initialises MPI (MPI_THREAD_MULTIPLE) unless already done
    return MPI.COMM_WORLD


class Result:
    """How a run ended: status ("finished" or "stopped"), summary (a dict), out (the folder)."""

    def __init__(self, raw, summary, out):
        self.status = raw["status"]
        self.signal = raw["signal"]
        self.rank = raw["rank"]
        self.world_size = raw["world_size"]
        self.elapsed_s = raw["elapsed_s"]
        self.last_checkpoint = raw["last_checkpoint"]
        self.summary = summary
        self.out = out

    def __repr__(self):
        return (f"Result(status={self.status!r}, out={self.out!r}, "
                f"elapsed_s={self.elapsed_s:.2f})")


class _Prepared:
    """The job's Python values as job-file values: functions registered (numbers), networks
    saved as TorchScript files under OUT/python/."""

    def __init__(self, job, out, writer):
        self.values = {}
        self.networks = {}  # op -> (module, export path pattern)
        for op, table in job._operators.items():
            self.values[op] = self._resolve(job, op, table, out, writer)

    def _resolve(self, job, op, table, out, writer):
        v = {}
        kind = table.get("type")
        if kind in _PYTHON_TYPES:
            fn = table.get("fn")
            if fn is None:
                raise _tensair.ConfigError(f"[{op}] key \"fn\": missing (a Python function"
                                           + (" or iterable" if kind == "python_source" else "")
                                           + ")")
            if kind == "python_source":
                v["columns"], fn = self._source_columns(op, table, fn)
            elif "schema" in table:
                v["columns"] = _schema.declared(table["schema"], f"[{op}] schema")
            if "schema" in table:
                v["schema"] = job.DROP
            if kind != "python_source" and not callable(fn):
                raise _tensair.ConfigError(f"[{op}] key \"fn\": expected a function, got "
                                           f"{type(fn).__name__}")
            v["fn"] = _tensair.register_callable(fn)
        network = table.get("network")
        if network is not None and not isinstance(network, str):
            import torch
            if not isinstance(network, torch.nn.Module):
                raise _tensair.ConfigError(f"[{op}] key \"network\": expected a name, a path or "
                                           f"a torch.nn.Module, got {type(network).__name__}")
            path = os.path.join(os.path.abspath(out), "python", f"{op}.pt")
            if writer:
                scripted = _network.script_network(network, table.get("example_input"), op)
                _network.save_network(scripted, path)
            v["network"] = path
            v["example_input"] = job.DROP
            export = table.get("export")
            if export is None:
                export = f"python/{op}_trained_{{rank}}.pt"
                v["export"] = export
            self.networks[op] = (network, export)
        return v

    @staticmethod
    def _source_columns(op, table, fn):
        if "schema" in table:
            return _schema.declared(table["schema"], f"[{op}] schema"), fn
        where = f"[{op}]"
        if callable(fn) and not hasattr(fn, "__next__"):
            first = next(iter(fn()), None)  # a function is called again for the run
        elif hasattr(fn, "__next__"):
            first = next(fn, None)
            fn = itertools.chain([first], fn) if first is not None else fn
        else:
            first = next(iter(fn), None)
        if first is None:
            raise _tensair.DataError(f"{where} python_source: the iterable is empty; give "
                                     "schema= to run it anyway")
        return _schema.columns_of(first, where), fn


def _write(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _summary(out, raw):
    """rank 0: the final lines of OUT/metrics.jsonl (every rank's operators, the models'
    summaries); other ranks: this rank's counters."""
    summary = {"status": raw["status"], "elapsed_s": raw["elapsed_s"],
               "ranks": raw["world_size"], "operators": {}, "models": {}}
    counters = ("records_in", "records_out", "batches_in", "batches_out", "dead_letters")
    lines = []
    metrics = os.path.join(out, "metrics.jsonl")
    if raw["rank"] == 0 and os.path.exists(metrics):
        with open(metrics) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    finals = [l for l in lines if l.get("type") == "operator" and l.get("final")]
    if not finals:
        finals = raw["instances"]
    for l in finals:
        op = summary["operators"].setdefault(l["operator"], {c: 0 for c in counters})
        for c in counters:
            op[c] += l.get(c, 0)
    for l in lines:
        if l.get("kind") == "model_summary":
            summary["models"].setdefault(l["operator"], []).append(
                {k: v for k, v in l.items() if k not in ("kind", "t", "operator")})
        if l.get("type") == "job" and l.get("event") == "end":
            summary["end"] = {k: v for k, v in l.items() if k not in ("type", "event")}
    return summary


def run(job, out=None, resume=None, progress=None):
    """Runs `job` on this process's rank (all ranks under mpirun run the same script).

    out: the output folder (default out/<job name>); it gets job.toml (the job as a job file),
    python/ (networks as TorchScript, trained weights), metrics.jsonl and the sinks' files.
    resume: "latest" or a checkpoint folder, as `tensair run --resume`.
    progress: the progress line on stderr (default: when stderr is a terminal).
    Returns a Result; raises tensair.ConfigError etc. with the CLI's one-line message, and
    KeyboardInterrupt after a clean stop on Ctrl-C (SIGINT)."""
    out = os.fspath(out) if out is not None else os.path.join("out", job.name)
    rank, _ = launcher()
    comm = _comm()
    writer = rank == 0
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "job.toml")
    try:
        prepared = _Prepared(job, out, writer)
        if writer:
            _write(path, job.to_toml(prepared.values))
        if comm is not None:
            comm.Barrier()
        request = _tensair.RunRequest()
        request.job_file = path
        request.out_dir = out
        request.base_dir = job._base_dir
        request.resume = resume or ""
        request.progress = sys.stderr.isatty() if progress is None else bool(progress)
        raw = _tensair.run_job(request)
    finally:
        _tensair.clear_callables()
    for op, (module, export) in prepared.networks.items():
        trained = os.path.join(out, export.replace("{rank}", str(raw["rank"])))
        if os.path.exists(trained):
            _network.load_trained(module, trained)
    result = Result(raw, _summary(out, raw), out)
    if result.status == "stopped" and result.signal == signal.SIGINT:
        raise KeyboardInterrupt(f"job \"{job.name}\" stopped cleanly; output in {out}")
    return result


def validate(job, ranks):
    """What `tensair validate` prints; networks are scripted into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="tensair-validate-") as tmp:
        try:
            prepared = _Prepared(job, tmp, True)
            path = os.path.join(tmp, "job.toml")
            _write(path, job.to_toml(prepared.values))
            return _tensair.validate_job(path, [], ranks, job._base_dir)
        finally:
            _tensair.clear_callables()
