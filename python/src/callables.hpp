// The Python objects a job's python_* operators call, by number.
//
// A job file cannot hold a Python function, so the Python layer registers each one here before
// the job is built and writes its number into the job (`fn = 3`). Every rank of an mpirun job
// runs the same script and registers the same objects in the same order, so the numbers agree
// across ranks. The registry holds references; it is cleared when the run ends.
//
// Thread-safety: every function here must be called with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

namespace tensair::python {

// Keeps `object` alive and returns its number (1, 2, ...).
int64_t register_callable(pybind11::object object);
// The object registered under `id`; throws ConfigError for a number nothing was registered
// under (a job file with a python_* operator run by the CLI, or a number made up by hand).
pybind11::object callable(int64_t id);
// Drops every registered object; numbering starts again at 1, so that every rank of a job,
// running the same script, numbers the same functions alike however many jobs ran before.
void clear_callables();

}  // namespace tensair::python
