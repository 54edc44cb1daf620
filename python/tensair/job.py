"""tensair.Job: a dataflow built in Python, parallel to a job file (docs/python.md).

    job = tensair.Job("name", credit_mb=8)           # the [job] table's keys
    job.add("gen", "python_source", fn=records)      # any operator type, keys as in job files
    job.add("model", "model", network=my_module, lr=0.05, inputs={"train": "gen"})
    job.add("out", "python_sink", fn=on_batch, inputs={"in": "model.predictions"})
    result = job.run(out="out/name")

Every key is the job-file key of docs/job-files.md. Where a job file has a path or code, a
Python value is taken too: `network=` a torch.nn.Module, `fn=` a function or iterable for the
python_* types, `schema=` a dict of column types for python_source and python_map.
"""
import copy
import os
import tomllib

from . import _toml
from ._tensair import ConfigError

# A value for Job.from_toml(set=...) and Job.set(): remove the key from its table.
DROP = object()

_RESERVED = ("job", "checkpoint")


def _inputs_table(op, inputs):
    """The job-file form of `inputs`: {port: "op[.port]" | [..] | {"from": .., "routing": ..}}."""
    if isinstance(inputs, (str, list, tuple)):
        inputs = {"in": inputs}
    if not isinstance(inputs, dict):
        raise ConfigError(f"[{op}] inputs: expected a dict of port to upstream, got "
                          f"{type(inputs).__name__}")
    ports = {}
    for port, spec in inputs.items():
        if isinstance(spec, dict):
            if "from" not in spec:
                raise ConfigError(f"[{op}] inputs.{port}: a dict needs \"from\"")
            ports[port] = dict(spec)
        elif isinstance(spec, (list, tuple)):
            ports[port] = {"from": list(spec)}
        else:
            ports[port] = {"from": spec}
    return ports


class Job:
    DROP = DROP

    def __init__(self, name, **settings):
        if not isinstance(name, str) or not name:
            raise ConfigError("Job: the name must be a non-empty string")
        self.name = name
        self.settings = dict(settings)  # the [job] table
        self._checkpoint = None
        self._operators = {}
        self._base_dir = os.getcwd()  # where relative input paths resolve

    # Building ----------------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path, set=None):
        """A job from a job file; `set` = {"section.key": value} as the CLI's --set."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                tables = tomllib.load(f)
        except FileNotFoundError:
            from ._tensair import IoError
            raise IoError(f"cannot open job file {path}: no such file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from None
        settings = dict(tables.pop("job", {}))
        name = settings.pop("name", os.path.splitext(os.path.basename(path))[0])
        job = cls(name, **settings)
        if "checkpoint" in tables:
            job._checkpoint = dict(tables.pop("checkpoint"))
        for op, table in tables.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: \"{op}\" is not a table")
            job._operators[op] = dict(table)
        job._base_dir = os.path.dirname(os.path.abspath(path))
        for k, v in (set or {}).items():
            job.set(k, v)
        return job

    def add(self, name, type, inputs=None, **keys):
        """Adds operator `name` of `type` with its job-file keys; returns the job."""
        if not isinstance(name, str) or not name or name in _RESERVED:
            raise ConfigError(f"Job.add: {name!r} cannot name an operator")
        if name in self._operators:
            raise ConfigError(f"Job.add: job \"{self.name}\" already has an operator \"{name}\"")
        table = {"type": type}
        if inputs is not None:
            ports = _inputs_table(name, inputs)
            if list(ports) == ["in"]:
                table.update(ports["in"])  # from = ..., routing = ... as a job file writes them
            else:
                table["inputs"] = ports
        table.update(keys)
        self._operators[name] = table
        return self

    def checkpoint(self, **keys):
        """The [checkpoint] table: every_s, every_records, dir, keep (docs/fault-tolerance.md)."""
        self._checkpoint = dict(keys)
        return self

    def set(self, dotted, value):
        """Sets `section.key` (a [job] key with section "job"); Job.DROP removes the key."""
        section, _, k = dotted.partition(".")
        if not k:
            raise ConfigError(f"set {dotted!r}: expected section.key")
        if section == "job":
            table = self.settings
        elif section == "checkpoint":
            if self._checkpoint is None:
                self._checkpoint = {}
            table = self._checkpoint
        elif section in self._operators:
            table = self._operators[section]
        else:
            raise ConfigError(f"set {dotted!r}: no operator \"{section}\" in job \"{self.name}\"")
        if value is DROP:
            table.pop(k, None)
        else:
            table[k] = value
        return self

    @property
    def operators(self):
        """{name: {key: value}} (a copy), in the order they were added."""
        return copy.deepcopy({n: dict(t) for n, t in self._operators.items()})

    # Output ------------------------------------------------------------------------------------

    def to_toml(self, values=None):
        """The job as job-file text. `values` replaces operators' keys ({op: {key: value}}),
        which is how run() puts file paths and function numbers in for Python values."""
        tables = {"job": {"name": self.name, **self.settings}}
        if self._checkpoint is not None:
            tables["checkpoint"] = dict(self._checkpoint)
        for op, table in self._operators.items():
            t = dict(table)
            t.update((values or {}).get(op, {}))
            tables[op] = {k: v for k, v in t.items() if v is not DROP}
        return _toml.dumps(tables)

    def validate(self, ranks=1):
        """What `tensair validate` prints for this job on `ranks` ranks."""
        from ._run import validate
        return validate(self, ranks)

    def run(self, out=None, resume=None, progress=None):
        """Runs the job; returns a Result. See tensair._run.run."""
        from ._run import run
        return run(self, out=out, resume=resume, progress=progress)

    def __repr__(self):
        return f"Job({self.name!r}, operators={list(self._operators)})"
