"""Writes the tables of a job as TOML (the job-file syntax the C++ loader reads).

Only what job files use: strings, integers, floats, booleans, lists and nested tables (written
inline). Python's tomllib reads TOML but does not write it.
"""
import json
import math
import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key(name):
    name = str(name)
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def value(v, where):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x, where) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x, where)}" for k, x in v.items()) + " }"
    raise TypeError(f"{where}: a job-file value cannot be a {type(v).__name__} ({v!r})")


def dumps(tables):
    """`tables`: {section: {key: value}} in order; returns the TOML text."""
    lines = []
    for section, keys in tables.items():
        lines.append(f"[{key(section)}]")
        for k, v in keys.items():
            lines.append(f"{key(k)} = {value(v, f'[{section}] {k}')}")
        lines.append("")
    return "\n".join(lines)
