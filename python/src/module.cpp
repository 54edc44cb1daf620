// The extension module tensair._tensair: the C++ engine as the Python package sees it. The
// package (python/tensair/) builds jobs, turns Python values into job-file values and calls
// run_job; see docs/python.md.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "callables.hpp"
#include "python_operators.hpp"
#include "run_job.hpp"
#include "tensair/common/error.hpp"
#include "tensair/drift/detector.hpp"
#include "tensair/drift/operator.hpp"
#include "tensair/io/types.hpp"
#include "tensair/job/job.hpp"
#include "tensair/kafka/kafka.hpp"
#include "tensair/model/model.hpp"

namespace py = pybind11;

namespace {

// Python's json module turns the detectors' JSON into dicts.
py::object from_json(const nlohmann::json& value) {
  return py::module_::import("json").attr("loads")(value.dump());
}

void bind_detector(py::module_& m) {
  using tensair::drift::Detector;
  py::class_<Detector, std::unique_ptr<Detector>>(m, "Detector")
      .def(py::init([](const std::string& name, const tensair::drift::ParamMap& params) {
             return tensair::drift::make_detector(name, params);
           }),
           py::arg("name"), py::arg("params") = tensair::drift::ParamMap{})
      .def("update", &Detector::update, py::arg("value"))
      .def("reset", &Detector::reset)
      .def_property_readonly("name", &Detector::name)
      .def_property_readonly("params", [](const Detector& d) { return from_json(d.params()); })
      .def_property_readonly("state", [](const Detector& d) { return from_json(d.state()); })
      .def("save_state", [](const Detector& d) { return py::bytes(d.save_state()); })
      .def("load_state",
           [](Detector& d, const py::bytes& b) { d.load_state(std::string_view(b)); });
  m.def("detector_names", &tensair::drift::detector_names);
  m.def("detector_parameters", &tensair::drift::known_parameters, py::arg("name"));
}

}  // namespace

PYBIND11_MODULE(_tensair, m) {
  m.doc() = "TensAIR's engine (C++); use the tensair package";

  // Exception classes, one per tensair::ErrorKind, with the same one-line messages.
  static py::exception<tensair::Error> error(m, "Error");
  static py::exception<tensair::ConfigError> config_error(m, "ConfigError", error.ptr());
  static py::exception<tensair::IoError> io_error(m, "IoError", error.ptr());
  static py::exception<tensair::TransportError> transport_error(m, "TransportError",
                                                                error.ptr());
  static py::exception<tensair::DataError> data_error(m, "DataError", error.ptr());
  static py::exception<tensair::ModelError> model_error(m, "ModelError", error.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tensair::Error& e) {
      using tensair::ErrorKind;
      switch (e.kind()) {
        case ErrorKind::kConfig: config_error(e.what()); break;
        case ErrorKind::kIo: io_error(e.what()); break;
        case ErrorKind::kTransport: transport_error(e.what()); break;
        case ErrorKind::kData: data_error(e.what()); break;
        case ErrorKind::kModel: model_error(e.what()); break;
        case ErrorKind::kCancelled: PyErr_SetNone(PyExc_KeyboardInterrupt); break;
        case ErrorKind::kError: error(e.what()); break;
      }
    }
  });

  tensair::model::register_job_types();
  tensair::io::register_job_types();
  tensair::drift::register_job_types();
  tensair::kafka::register_job_types();
  tensair::python::register_python_types();

  m.def("register_callable", &tensair::python::register_callable, py::arg("object"));
  m.def("clear_callables", &tensair::python::clear_callables);
  m.def("operator_types", &tensair::job::operator_types);

  py::class_<tensair::python::RunRequest>(m, "RunRequest")
      .def(py::init<>())
      .def_readwrite("job_file", &tensair::python::RunRequest::job_file)
      .def_readwrite("overrides", &tensair::python::RunRequest::overrides)
      .def_readwrite("base_dir", &tensair::python::RunRequest::base_dir)
      .def_readwrite("out_dir", &tensair::python::RunRequest::out_dir)
      .def_readwrite("resume", &tensair::python::RunRequest::resume)
      .def_readwrite("progress", &tensair::python::RunRequest::progress);
  m.def("run_job", &tensair::python::run_job, py::arg("request"));
  m.def("validate_job", &tensair::python::validate_job, py::arg("job_file"),
        py::arg("overrides") = std::vector<std::string>{}, py::arg("ranks") = 1,
        py::arg("base_dir") = std::string());
  m.def("finalize_mpi", &tensair::python::finalize_mpi);

  bind_detector(m);
}
