#include "callables.hpp"

#include <map>
#include <string>

#include "tensair/common/error.hpp"

namespace py = pybind11;

namespace tensair::python {
namespace {

// Leaked on purpose: destroying Python objects after the interpreter has gone would crash.
std::map<int64_t, py::object>& registry() {
  static auto* objects = new std::map<int64_t, py::object>();
  return *objects;
}
int64_t g_next = 1;

}  // namespace

int64_t register_callable(py::object object) {
  const int64_t id = g_next++;
  registry().emplace(id, std::move(object));
  return id;
}

py::object callable(int64_t id) {
  auto it = registry().find(id);
  if (it == registry().end()) {
    throw ConfigError("no Python function number " + std::to_string(id) +
                      " in this process: python_* operators run only in jobs started from "
                      "Python (tensair.Job.run)");
  }
  return it->second;
}

void clear_callables() {
  registry().clear();
  g_next = 1;
}

}  // namespace tensair::python
