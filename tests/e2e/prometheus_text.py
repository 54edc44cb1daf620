"""A strict parser of the Prometheus text exposition format, version 0.0.4.

parse(text) returns {family name: Family} and raises ValueError naming the line for anything
the format does not allow: a bad metric or label name, an unknown escape in a label value or a
HELP text, a TYPE after the family's samples or given twice, a family's samples not contiguous,
the same series twice, a value that is not a Go float, a negative or NaN counter, a sample
name that does not belong to its TYPE, no final newline.

Usage as a program: prometheus_text.py FILE (or - for stdin); exit 1 on the first error.
"""
import math
import re
import sys

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []  # (sample name, {label: value}, value)


def _unescape(text, allowed, where):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in allowed:
                raise ValueError(f"{where}: invalid escape in {text!r}")
            out.append({"\\": "\\", "n": "\n", '"': '"'}[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _value(text, where):
    if text in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not FLOAT.match(text):
        raise ValueError(f"{where}: {text!r} is not a number")
    return float(text)


def _labels(text, where):
    """Parses 'a="x",b="y"' (an optional trailing comma is allowed)."""
    labels, i = {}, 0
    while i < len(text):
        m = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"").match(text, i)
        if not m:
            raise ValueError(f"{where}: bad label at {text[i:]!r}")
        name = m.group(1)
        if name.startswith("__"):
            raise ValueError(f"{where}: label name {name!r} is reserved")
        j = m.end()
        raw = []
        while True:
            if j >= len(text):
                raise ValueError(f"{where}: unterminated label value")
            if text[j] == "\\":
                raw.append(text[j:j + 2])
                j += 2
                continue
            if text[j] == '"':
                break
            if text[j] == "\n":
                raise ValueError(f"{where}: raw newline in a label value")
            raw.append(text[j])
            j += 1
        value = _unescape("".join(raw), '\\n"', where)
        if name in labels:
            raise ValueError(f"{where}: label {name!r} given twice")
        labels[name] = value
        i = j + 1
        if i < len(text):
            if text[i] != ",":
                raise ValueError(f"{where}: expected ',' between labels at {text[i:]!r}")
            i += 1
    return labels


def _family_of(sample, families):
    for suffix in ("_bucket", "_sum", "_count", ""):
        if suffix and not sample.endswith(suffix):
            continue
        base = sample[: len(sample) - len(suffix)] if suffix else sample
        f = families.get(base)
        if f is None:
            continue
        if suffix == "" or (f.type == "histogram") or (f.type == "summary" and suffix != "_bucket"):
            return f
    return None


def parse(text):
    if text and not text.endswith("\n"):
        raise ValueError("the text does not end with a newline")
    families, order, seen_series, closed = {}, [], set(), set()
    current = None
    for number, line in enumerate(text.split("\n")[:-1] if text else [], start=1):
        where = f"line {number}"
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3) if line.startswith("# ") else [line]
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.match(name):
                    raise ValueError(f"{where}: invalid metric name {name!r}")
                f = families.get(name)
                if f is None:
                    f = families[name] = Family(name)
                    order.append(name)
                if name in closed or f.samples:
                    raise ValueError(f"{where}: {parts[1]} for {name} after its samples")
                rest = parts[3] if len(parts) == 4 else ""
                if parts[1] == "HELP":
                    if f.help is not None:
                        raise ValueError(f"{where}: second HELP for {name}")
                    f.help = _unescape(rest, "\\n", where)
                else:
                    if f.type is not None:
                        raise ValueError(f"{where}: second TYPE for {name}")
                    if rest not in TYPES:
                        raise ValueError(f"{where}: unknown type {rest!r}")
                    f.type = rest
                if current is not None and current.name != name:
                    closed.add(current.name)
                current = f
            continue  # another comment
        m = re.match(r"([^\s{]+)(\{(.*)\})?\s+(\S+)(\s+(-?\d+))?\Z", line)
        if not m:
            raise ValueError(f"{where}: not a sample line: {line!r}")
        sample = m.group(1)
        if not METRIC_NAME.match(sample):
            raise ValueError(f"{where}: invalid metric name {sample!r}")
        labels = _labels(m.group(3) or "", where)
        value = _value(m.group(4), where)
        f = _family_of(sample, families)
        if f is None:
            f = families[sample] = Family(sample)
            f.type = "untyped"
            order.append(sample)
        if f.name in closed:
            raise ValueError(f"{where}: samples of {f.name} are not together")
        if current is not None and current is not f:
            closed.add(current.name)
        current = f
        key = (sample, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ValueError(f"{where}: series {sample}{labels} given twice")
        seen_series.add(key)
        if f.type == "counter" and (math.isnan(value) or value < 0):
            raise ValueError(f"{where}: counter {sample} has value {value}")
        f.samples.append((sample, labels, value))
    return families


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    try:
        families = parse(text)
    except ValueError as e:
        print(f"prometheus_text: {path}: {e}", file=sys.stderr)
        return 1
    print(f"{len(families)} families, {sum(len(f.samples) for f in families.values())} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
