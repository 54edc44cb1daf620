// The job-file types whose work is a Python function: python_source, python_sink, python_map,
// python_filter (docs/python.md). Their `fn` key is the number under which the Python layer
// registered the function (callables.hpp), so they run only in jobs started from Python.
//
// Threads and the GIL: each instance runs on its engine thread, as every operator does, and
// takes the GIL only around the Python calls and the conversions between batches and numpy
// (numpy_batch.hpp); emitting, waiting for credit and everything else happens without it.
//
// Errors: a dict that does not fit the schema is a dead letter (DataError's message as the
// reason); an exception raised by the function ends the job with one line naming its type,
// message and the innermost frame (`fn raised ValueError: bad (at job.py:12 in parse)`).
#pragma once

namespace tensair::python {

// Registers the four types with tensair::job (once).
void register_python_types();

}  // namespace tensair::python
