"""Column types of what a python_source yields, inferred from its first item (docs/python.md).

An item is a dict. It is a batch when every value is a sequence (a numpy array, a list, a
tuple) and a record otherwise (a scalar or a str among its values). A record whose values are
all arrays (a vector feature alone) looks like a batch: declare `schema=` for such sources.
Python numbers become float32 / int64 (what networks take); numpy arrays keep their dtype
(bool as uint8; integers other than int32 as int64).
"""
import numpy as np

from ._tensair import DataError

_NUMPY = {("f", 4): "float32", ("f", 8): "float64", ("i", 4): "int32", ("u", 1): "uint8",
          ("b", 1): "uint8"}


def _dtype(value, array):
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind in "USO":
        return "string"
    native = not isinstance(value, (np.ndarray, np.generic))
    if native:
        if kind == "f":
            return "float32"
        if kind in "iub":
            return "int64" if kind != "b" else "uint8"
    if (kind, size) in _NUMPY:
        return _NUMPY[(kind, size)]
    if kind in "iu":
        return "int64"
    raise DataError(f"no TensAIR dtype for numpy dtype {array.dtype}")


def _is_sequence(v):
    return isinstance(v, (np.ndarray, list, tuple)) and not (
        isinstance(v, np.ndarray) and v.ndim == 0)


def columns_of(item, where):
    """["name:dtype[shape]", ...] for `item` (a batch or a record)."""
    if not isinstance(item, dict) or not item:
        raise DataError(f"{where}: the first item is {type(item).__name__}, expected a dict of "
                        "columns (numpy arrays for a batch, scalars for a record)")
    batch = all(_is_sequence(v) for v in item.values())
    columns = []
    for name, v in item.items():
        try:
            array = np.asarray(v)
            dtype = _dtype(v, array)
        except DataError as e:
            raise DataError(f"{where}: column \"{name}\": {e}") from None
        shape = array.shape[1:] if batch else array.shape
        if dtype == "string" or not shape:
            columns.append(f"{name}:{dtype}")
        else:
            columns.append(f"{name}:{dtype}[{','.join(str(d) for d in shape)}]")
    return columns


def declared(schema, where):
    """`schema=` as column specs: {"x": "float32[4]", "y": "int64"} or ["x:float32[4]", ..]."""
    if isinstance(schema, dict):
        return [f"{k}:{v}" for k, v in schema.items()]
    if isinstance(schema, (list, tuple)) and all(isinstance(s, str) for s in schema):
        return list(schema)
    raise DataError(f"{where}: schema must be a dict of name to type or a list of "
                    "\"name:type\" strings")
