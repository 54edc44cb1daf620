#include "tensair/drift/operator.hpp"

#include <nlohmann/json.hpp>
#include <sstream>

#include "tensair/common/error.hpp"
#include "tensair/common/metrics_registry.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/job/registry.hpp"

namespace tensair::drift {
namespace {

using dataflow::BatchBuilder;
using dataflow::BatchPtr;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;

Schema control_schema() { return {{"command", DType::kString, {}}}; }
Schema drift_schema() {
  return {{"index", DType::kInt64, {}}, {"step", DType::kInt64, {}}, {"version", DType::kInt64, {}},
          {"rank", DType::kInt64, {}}, {"detector", DType::kString, {}}};
}

class DetectorDef final : public dataflow::OperatorDef {
 public:
  explicit DetectorDef(DetectorOperatorOptions o) : o_(std::move(o)) {
    make_detector(o_.detector, o_.params);  // checks the name and parameters now
    if (o_.watch != "predict" && o_.watch != "train" && o_.watch != "all") {
      throw ConfigError("unknown watch \"" + o_.watch + "\" (known: predict, train, all)");
    }
  }
  std::string type() const override { return "drift_detector"; }
  std::vector<dataflow::PortSpec> inputs() const override { return {{"in"}}; }
  std::vector<dataflow::PortSpec> outputs() const override {
    return {{"control", control_schema(), true}, {"drift", drift_schema(), true}};
  }
  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    if (!in.empty() && in[0]) {
      const dataflow::ColumnSpec* c = dataflow::find_column(*in[0], o_.column);
      if (!c) {
        throw ConfigError("column \"" + o_.column + "\" is not among the columns arriving (" +
                          dataflow::schema_to_string(*in[0]) + ")");
      }
      if (o_.watch != "all" && !dataflow::find_column(*in[0], "phase")) {
        throw ConfigError("watch = \"" + o_.watch + "\" needs a phase column (connect a model's metrics output)");
      }
    }
    return {control_schema(), drift_schema()};
  }
  std::string describe() const override { return "detector=" + o_.detector + " column=" + o_.column + " watch=" + o_.watch; }

  class Instance final : public dataflow::Operator {
   public:
    explicit Instance(const DetectorOperatorOptions& o) : o_(o), detector_(make_detector(o.detector, o.params)) {}

    void process(int, const BatchPtr& batch, Context& ctx) override {
      const auto& values = batch->column(o_.column);
      const auto* phase = batch->find("phase");
      const auto* step = batch->find("step");
      const auto* version = batch->find("version");
      const auto* rank = batch->find("rank");
      const auto* records = batch->find("records");
      for (int64_t r = 0; r < batch->rows(); ++r) {
        std::string_view p = phase ? phase->str(r) : std::string_view("all");
        if (o_.watch == "predict" && p == "train") {
          // Training (again): the next prediction phase starts a fresh window, as the
          // reference resets its detector after convergence.
          if (fed_since_reset_ > 0) {
            detector_->reset();
            fed_since_reset_ = 0;
          }
          continue;
        }
        if (o_.watch != "all" && p != o_.watch) continue;
        double v = values.as_double(r);
        if (!std::isfinite(v)) {
          ctx.dead_letter("non-finite " + o_.column + " not fed to the detector", std::to_string(v));
          continue;
        }
        int64_t index = index_++;
        ++fed_since_reset_;
        if (!detector_->update(v)) continue;
        fed_since_reset_ = 0;
        int64_t s = step ? step->as_int64(r) : -1, ver = version ? version->as_int64(r) : -1;
        int64_t rk = rank ? rank->as_int64(r) : -1;
        // "index": the stream position (the model's records so far) when known, so that it
        // compares with the sources' concept_change lines; "values": values fed so far.
        int64_t position = records ? records->as_int64(r) : index;
        ctx.log_event({{"kind", "drift"}, {"detector", detector_->name()}, {"index", position}, {"values", index}, {"step", s},
                       {"version", ver}, {"model_rank", rk}, {"state", detector_->state()}});
        const dataflow::InstanceInfo& info = ctx.info();
        metrics::registry()
            .counter("tensair_drift_detections_total", "Changes the drift detector reported",
                     {{"operator", info.name},
                      {"instance", std::to_string(info.instance)},
                      {"rank", std::to_string(info.rank)}})
            .inc();
        BatchBuilder control(control_schema());
        control.column(0).append_string("start");
        if (o_.reset_optimizer) control.column(0).append_string("reset_optimizer");
        if (o_.warmup) control.column(0).append_string("warmup");
        ctx.emit(0, control.finish());
        BatchBuilder d(drift_schema());
        d.column(0).append<int64_t>(index);
        d.column(1).append<int64_t>(s);
        d.column(2).append<int64_t>(ver);
        d.column(3).append<int64_t>(rk);
        d.column(4).append_string(detector_->name());
        ctx.emit(1, d.finish());
      }
    }

    // Checkpoints: the detector's own state (Detector::save_state) and the counters.
    void snapshot(dataflow::StateWriter& state, Context&) override {
      state.put<uint32_t>(kLayout);
      const std::string detector = detector_->save_state();
      state.put_bytes(detector.data(), detector.size());
      state.put<int64_t>(index_);
      state.put<int64_t>(fed_since_reset_);
    }
    void restore(dataflow::StateReader& state, Context&) override {
      const auto layout = state.get<uint32_t>();
      if (layout != kLayout) {
        state.fail("holds drift_detector state of layout version " + std::to_string(layout) +
                   ", this build reads version " + std::to_string(kLayout));
      }
      const std::string_view detector = state.get_bytes();
      try {
        detector_->load_state(detector);
      } catch (const DataError& e) {
        state.fail(e.what());
      }
      index_ = state.get<int64_t>();
      fed_since_reset_ = state.get<int64_t>();
      if (index_ < 0 || fed_since_reset_ < 0 || fed_since_reset_ > index_) {
        state.fail("holds impossible counters (" + std::to_string(index_) + " values fed, " +
                   std::to_string(fed_since_reset_) + " since the last reset)");
      }
    }

   private:
    static constexpr uint32_t kLayout = 1;

    const DetectorOperatorOptions& o_;
    std::unique_ptr<Detector> detector_;
    int64_t index_ = 0, fed_since_reset_ = 0;
  };

  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo&) const override {
    return std::make_unique<Instance>(o_);
  }

 private:
  DetectorOperatorOptions o_;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> detector_operator(DetectorOperatorOptions options) {
  return std::make_shared<DetectorDef>(std::move(options));
}

void register_job_types() {
  static const bool registered = [] {
    job::register_operator_type(
        {"drift_detector", "watches a model's loss (OPTWIN, ADWIN, Page-Hinkley) and restarts its training on drift",
         [](const job::Params& p) {
           DetectorOperatorOptions o;
           o.detector = p.str("detector", o.detector);
           o.column = p.str("column", o.column);
           o.watch = p.str("watch", o.watch);
           o.reset_optimizer = p.boolean("reset_optimizer", false);
           o.warmup = p.boolean("warmup", false);
           if (auto params = p.table("params")) {
             for (const auto& [k, v] : params->raw()) {
               std::string key(k.str());
               if (auto s = v.value_exact<std::string>()) {
                 o.params[key] = *s;
               } else if (auto i = v.value_exact<int64_t>()) {
                 o.params[key] = std::to_string(*i);
               } else if (auto d = v.value<double>()) {
                 char buf[32];  // %.17g: every double reads back exactly
                 std::snprintf(buf, sizeof buf, "%.17g", *d);
                 o.params[key] = buf;
               } else if (auto b = v.value<bool>()) {
                 o.params[key] = *b ? "true" : "false";
               } else {
                 params->fail(key, "expected a number, a string or a boolean");
               }
               (void)params->node(key);
             }
           }
           // Blame the key the mistake is in: the detector's name, watch, or a parameter.
           std::string key = "params";
           try {
             make_detector(o.detector, {});
           } catch (const ConfigError&) {
             key = "detector";
           }
           if (o.watch != "predict" && o.watch != "train" && o.watch != "all") key = "watch";
           try {
             return detector_operator(o);
           } catch (const ConfigError& e) {
             p.fail(key, e.what());
           }
         }});
    return true;
  }();
  (void)registered;
}

}  // namespace tensair::drift
