#include "python_operators.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "callables.hpp"
#include "numpy_batch.hpp"
#include "tensair/common/error.hpp"
#include "tensair/dataflow/operator_def.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/job/registry.hpp"
#include "tensair/ops/sources.hpp"

namespace py = pybind11;

namespace tensair::python {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Context;
using dataflow::InstanceInfo;
using dataflow::Operator;
using dataflow::OperatorDef;
using dataflow::PortSpec;
using dataflow::Schema;
using dataflow::SourceState;

namespace {

// "fn raised ValueError: bad value (at job.py:12 in parse)": one line from a Python exception.
[[noreturn]] void raise_from_python(py::error_already_set& e) {
  std::string type = "Exception";
  std::string message;
  std::string where;
  try {
    type = py::str(e.type().attr("__name__")).cast<std::string>();
    message = py::str(e.value()).cast<std::string>();
    if (e.trace()) {
      py::list frames = py::module_::import("traceback").attr("extract_tb")(e.trace());
      if (!frames.empty()) {
        py::object last = frames[frames.size() - 1];
        where = " (at " + py::str(last.attr("filename")).cast<std::string>() + ":" +
                py::str(last.attr("lineno")).cast<std::string>() + " in " +
                py::str(last.attr("name")).cast<std::string>() + ")";
      }
    }
  } catch (py::error_already_set&) {
    PyErr_Clear();
  }
  std::replace(message.begin(), message.end(), '\n', ' ');
  if (type == "KeyboardInterrupt") throw Cancelled();
  throw Error("fn raised " + type + (message.empty() ? "" : ": " + message) + where);
}

std::string short_repr(py::handle object) {
  try {
    std::string s = py::repr(object).cast<std::string>();
    return s.size() > 200 ? s.substr(0, 200) + "..." : s;
  } catch (py::error_already_set&) {
    PyErr_Clear();
    return "(unprintable)";
  }
}

std::string function_name(int64_t id) {
  py::gil_scoped_acquire gil;
  py::object fn = callable(id);
  for (const char* attr : {"__qualname__", "__name__"}) {
    if (py::hasattr(fn, attr)) return py::str(fn.attr(attr)).cast<std::string>();
  }
  return py::str(py::type::handle_of(fn).attr("__name__")).cast<std::string>();
}

// The keys every python_* operator has: fn, and columns (the schema of what it emits).
struct Common {
  int64_t fn = 0;
  std::string fn_name;
  std::optional<Schema> columns;
};

Common common_keys(const job::Params& p, bool columns_required) {
  Common c;
  c.fn = p.integer("fn", std::nullopt, 1);
  try {
    c.fn_name = function_name(c.fn);
  } catch (const ConfigError& e) {
    p.fail("fn", e.what());
  }
  if (p.has("columns") || columns_required) {
    c.columns = job::column_specs(p, "columns");
    if (c.columns->empty()) p.fail("columns", "name at least one column, e.g. [\"x:float32[4]\"]");
  }
  return c;
}

// A Python function called on batches, with the GIL taken for the call and its conversions.
class PythonStep : public Operator {
 public:
  explicit PythonStep(int64_t fn) : fn_id_(fn) {}
  ~PythonStep() override {
    py::gil_scoped_acquire gil;
    fn_ = py::object();
  }

 protected:
  // Calls fn(batch as dict); the result is converted by `convert` while the GIL is held.
  template <class Convert>
  auto call(const BatchPtr& batch, Convert&& convert) {
    py::gil_scoped_acquire gil;
    if (!fn_) fn_ = callable(fn_id_);
    try {
      py::object result = fn_(batch_to_dict(batch));
      return convert(result);
    } catch (py::error_already_set& e) {
      raise_from_python(e);
    }
  }

 private:
  int64_t fn_id_;
  py::object fn_;
};

class PythonSink final : public PythonStep {
 public:
  using PythonStep::PythonStep;
  void process(int, const BatchPtr& batch, Context&) override {
    call(batch, [](py::object&) { return 0; });
  }
};

class PythonMap final : public PythonStep {
 public:
  PythonMap(int64_t fn, std::optional<Schema> columns) : PythonStep(fn), columns_(std::move(columns)) {}
  void process(int, const BatchPtr& batch, Context& ctx) override {
    std::optional<Batch> out;
    std::string bad;
    call(batch, [&](py::object& result) {
      if (result.is_none()) return 0;
      try {
        out = dict_to_batch(result, columns_ ? *columns_ : infer_batch_schema(result));
      } catch (const DataError& e) {
        bad = e.what();
      }
      return 0;
    });
    if (!bad.empty()) {
      ctx.dead_letter("python_map result: " + bad, std::to_string(batch->rows()) + " rows in");
    } else if (out) {
      ctx.emit(0, std::move(*out));
    }
  }

 private:
  std::optional<Schema> columns_;
};

class PythonFilter final : public PythonStep {
 public:
  using PythonStep::PythonStep;
  void process(int, const BatchPtr& batch, Context& ctx) override {
    std::vector<int64_t> keep;
    std::string bad;
    call(batch, [&](py::object& result) {
      py::array_t<bool> mask = py::module_::import("numpy").attr("asarray")(result, "bool");
      if (mask.ndim() != 1 || mask.shape(0) != batch->rows()) {
        bad = "python_filter result: expected a boolean mask of " +
              std::to_string(batch->rows()) + " rows, got an array of " +
              std::to_string(mask.size()) + " values";
        return 0;
      }
      auto m = mask.unchecked<1>();
      for (int64_t r = 0; r < batch->rows(); ++r) {
        if (m(r)) keep.push_back(r);
      }
      return 0;
    });
    if (!bad.empty()) {
      ctx.dead_letter(bad, std::to_string(batch->rows()) + " rows in");
    } else if (static_cast<int64_t>(keep.size()) == batch->rows()) {
      ctx.emit(0, batch);
    } else if (!keep.empty()) {
      ctx.emit(0, batch->take(keep));
    }
  }
};

// Items from a Python iterable (or a function returning one), pass after pass. Each item is a
// batch or a record (numpy_batch.hpp); records are collected into batches of batch_size. With
// several instances and `shard`, instance i takes the items whose index (over all passes) is
// i modulo the instance count. A checkpoint saves how many items were read; restore() starts
// the iterable again and skips that many, so a resumed source emits what the original would
// have if the iterable gives the same items again (a generator over a file does; one over
// time or random numbers without a seed does not).
class PythonSource final : public Operator {
 public:
  PythonSource(int64_t fn, Schema columns, ops::SourceOptions options, const InstanceInfo& info)
      : fn_id_(fn),
        schema_(std::move(columns)),
        opt_(options),
        instance_(info.instance),
        instances_(info.instances),
        bucket_(options.rate, options.burst) {
    if (opt_.limit > 0) {
      // This instance's share of the records, as if each item were one record.
      my_limit_ = instances_ > 1 && opt_.shard
                      ? (opt_.limit - instance_ + instances_ - 1) / instances_
                      : opt_.limit;
    }
  }
  ~PythonSource() override {
    py::gil_scoped_acquire gil;
    iterator_ = py::object();
    records_.reset();
  }

  SourceState produce(Context& ctx) override {
    if (my_limit_ > 0 && emitted_ >= my_limit_) return SourceState::kDone;
    int64_t want = opt_.batch_size;
    if (my_limit_ > 0) want = std::min<int64_t>(want, my_limit_ - emitted_);
    want = bucket_.take(want, ctx);
    std::optional<Batch> batch;
    bool done = false;
    {
      py::gil_scoped_acquire gil;
      if (!records_) records_.emplace(schema_);
      while (!batch && records_->rows() < want) {
        py::object item;
        if (!next_item(item)) {
          done = true;
          break;
        }
        try {
          if (is_batch(item, schema_)) {
            batch = dict_to_batch(item, schema_);
          } else {
            records_->append(item);
          }
        } catch (const DataError& e) {
          ctx.dead_letter("python_source item " + std::to_string(index_ - 1) + ": " + e.what(),
                          short_repr(item));
        }
      }
      if (!batch && records_->rows() > 0) batch = records_->finish();
    }
    if (batch) {
      if (my_limit_ > 0 && batch->rows() > my_limit_ - emitted_) {
        batch = batch->slice(0, my_limit_ - emitted_);
      }
      // Tokens for a whole batch item: what want did not cover.
      for (int64_t got = std::min(want, batch->rows()); got < batch->rows();) {
        got += bucket_.take(batch->rows() - got, ctx);
      }
      emitted_ += batch->rows();
      ctx.emit(0, std::move(*batch));
    }
    return done ? SourceState::kDone : SourceState::kMore;
  }

  void snapshot(dataflow::StateWriter& state, Context&) override {
    state.put(pass_);
    state.put(index_);
    state.put(pass_start_);
    state.put(emitted_);
  }
  void restore(dataflow::StateReader& state, Context&) override {
    pass_ = state.get<int64_t>();
    index_ = state.get<int64_t>();
    pass_start_ = state.get<int64_t>();
    emitted_ = state.get<int64_t>();
    state.expect_end();
    skip_ = index_ - pass_start_;
    restored_ = true;
  }

 private:
  // The next item of this instance, starting passes as needed; false when the source is done.
  // Needs the GIL.
  bool next_item(py::object& item) {
    for (;;) {
      if (!iterator_) {
        if (!start_pass()) return false;
      }
      PyObject* raw = PyIter_Next(iterator_.ptr());
      if (!raw) {
        if (PyErr_Occurred()) {
          py::error_already_set e;
          raise_from_python(e);
        }
        iterator_ = py::object();
        const bool empty = index_ == pass_start_;
        if (empty || (opt_.replay > 0 && pass_ >= opt_.replay)) return false;
        continue;
      }
      item = py::reinterpret_steal<py::object>(raw);
      const int64_t index = index_++;
      if (skip_ > 0) {
        --skip_;
        continue;
      }
      if (!opt_.shard || instances_ == 1 || index % instances_ == instance_) return true;
    }
  }

  bool start_pass() {
    try {
      if (restored_) {
        restored_ = false;  // the pass the checkpoint was in: started again, items skipped
        index_ = pass_start_;
      } else {
        ++pass_;
        pass_start_ = index_;
      }
      py::object source = callable(fn_id_);
      // A function (a generator function, a lambda) is called for every pass; an iterable is
      // iterated again (an iterator object gives its items once).
      if (PyCallable_Check(source.ptr()) && !PyIter_Check(source.ptr())) source = source();
      iterator_ = py::iter(source);
      return true;
    } catch (py::error_already_set& e) {
      raise_from_python(e);
    }
  }

  int64_t fn_id_;
  Schema schema_;
  ops::SourceOptions opt_;
  int instance_;
  int instances_;
  ops::TokenBucket bucket_;
  int64_t my_limit_ = 0;
  py::object iterator_;
  std::optional<RecordBuilder> records_;
  int64_t pass_ = 0;        // passes started
  int64_t index_ = 0;       // items read over all passes (all instances' items)
  int64_t pass_start_ = 0;  // index_ when the current pass started
  int64_t emitted_ = 0;     // records this instance emitted
  int64_t skip_ = 0;        // after restore: items of the pass to skip
  bool restored_ = false;
};

// python_filter keeps its input's columns; the others declare theirs or leave them unknown.
class FilterDef final : public OperatorDef {
 public:
  FilterDef(int64_t fn, std::string description) : fn_(fn), description_(std::move(description)) {}
  std::string type() const override { return "python_filter"; }
  std::vector<PortSpec> inputs() const override { return {PortSpec("in")}; }
  std::vector<PortSpec> outputs() const override { return {PortSpec("out")}; }
  std::vector<std::optional<Schema>> infer_outputs(
      const std::vector<std::optional<Schema>>& inputs) const override {
    return {inputs.empty() ? std::nullopt : inputs[0]};
  }
  std::unique_ptr<Operator> instantiate(const InstanceInfo&) const override {
    return std::make_unique<PythonFilter>(fn_);
  }
  std::string describe() const override { return description_; }

 private:
  int64_t fn_;
  std::string description_;
};

std::string describe(const Common& c, const std::string& more = "") {
  std::string s = "fn=" + c.fn_name;
  if (c.columns) s += " columns={" + dataflow::schema_to_string(*c.columns) + "}";
  return more.empty() ? s : s + " " + more;
}

}  // namespace

void register_python_types() {
  static const bool registered = [] {
    job::register_operator_type(
        {"python_source", "records or batches from a Python iterable or generator (Python jobs)",
         [](const job::Params& p) {
           Common c = common_keys(p, true);
           ops::SourceOptions o = job::source_options(p);
           Schema columns = *c.columns;
           return dataflow::operator_def(
               {"python_source",
                {},
                {PortSpec("out", columns)},
                [c, o](const InstanceInfo& info) {
                  return std::make_unique<PythonSource>(c.fn, *c.columns, o, info);
                },
                describe(c, ops::source_options_text(o))});
         }});
    job::register_operator_type(
        {"python_sink", "calls a Python function with every batch (Python jobs)",
         [](const job::Params& p) {
           Common c = common_keys(p, false);
           return dataflow::operator_def({"python_sink",
                                          {PortSpec("in")},
                                          {},
                                          [c](const InstanceInfo&) {
                                            return std::make_unique<PythonSink>(c.fn);
                                          },
                                          describe(c)});
         }});
    job::register_operator_type(
        {"python_map", "a Python function from a batch to a batch (Python jobs)",
         [](const job::Params& p) {
           Common c = common_keys(p, false);
           return dataflow::operator_def({"python_map",
                                          {PortSpec("in")},
                                          {PortSpec("out", c.columns)},
                                          [c](const InstanceInfo&) {
                                            return std::make_unique<PythonMap>(c.fn, c.columns);
                                          },
                                          describe(c)});
         }});
    job::register_operator_type(
        {"python_filter", "keeps the rows a Python function's boolean mask selects (Python jobs)",
         [](const job::Params& p) {
           Common c = common_keys(p, false);
           return std::make_shared<FilterDef>(c.fn, describe(c));
         }});
    return true;
  }();
  (void)registered;
}

}  // namespace tensair::python
