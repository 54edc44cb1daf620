#include "tensair/ops/baselines.hpp"

#include <map>
#include <nlohmann/json.hpp>

#include "tensair/common/error.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/ops/operator_state.hpp"

namespace tensair::ops {
namespace {

using dataflow::DType;
using dataflow::Schema;

Schema baseline_schema() {
  return {{"records", DType::kInt64, {}}, {"no_change_accuracy", DType::kFloat64, {}}, {"majority_accuracy", DType::kFloat64, {}}};
}

class BaselinesDef final : public dataflow::OperatorDef {
 public:
  explicit BaselinesDef(std::string label) : label_(std::move(label)) {}
  std::string type() const override { return "prequential_baselines"; }
  std::vector<dataflow::PortSpec> inputs() const override { return {{"in"}}; }
  std::vector<dataflow::PortSpec> outputs() const override { return {{"out", baseline_schema(), true}}; }
  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    if (!in.empty() && in[0]) {
      const dataflow::ColumnSpec* c = dataflow::find_column(*in[0], label_);
      if (!c) throw ConfigError("label column \"" + label_ + "\" is not among the columns arriving (" + dataflow::schema_to_string(*in[0]) + ")");
      if (c->dtype == DType::kString || c->dtype == DType::kFloat32 || c->dtype == DType::kFloat64) {
        throw ConfigError("label column \"" + label_ + "\" must hold integers");
      }
    }
    return {baseline_schema()};
  }
  std::string describe() const override { return "label=" + label_; }

  class Instance final : public dataflow::Operator {
   public:
    explicit Instance(const std::string& label) : label_(label) {}
    void process(int, const dataflow::BatchPtr& batch, dataflow::Context&) override {
      const dataflow::Column& y = batch->column(label_);
      for (int64_t r = 0; r < batch->rows(); ++r) {
        int64_t label = y.as_int64(r);
        if (n_ > 0) {
          no_change_ += label == previous_;
          majority_ += label == majority_label_;
        }
        int64_t c = ++counts_[label];
        if (c > majority_count_ || (c == majority_count_ && label < majority_label_)) {
          majority_count_ = c;
          majority_label_ = label;
        }
        previous_ = label;
        ++n_;
      }
    }
    void on_finish(dataflow::Context& ctx) override {
      // The first record has nothing to predict from: both baselines score n - 1 predictions.
      double scored = static_cast<double>(std::max<int64_t>(1, n_ - 1));
      double nc = static_cast<double>(no_change_) / scored, mj = static_cast<double>(majority_) / scored;
      ctx.log_event({{"kind", "baselines"}, {"records", n_}, {"no_change_accuracy", nc}, {"majority_accuracy", mj}});
      dataflow::BatchBuilder b(baseline_schema());
      b.column(0).append<int64_t>(n_);
      b.column(1).append<double>(nc);
      b.column(2).append<double>(mj);
      ctx.emit(0, b.finish());
    }

    // Checkpoints: the label counts and the running scores.
    void snapshot(dataflow::StateWriter& state, dataflow::Context&) override {
      put_layout(state, "prequential_baselines", kLayout);
      state.put<uint64_t>(counts_.size());
      for (const auto& [label, count] : counts_) {
        state.put<int64_t>(label);
        state.put<int64_t>(count);
      }
      for (int64_t v : {n_, no_change_, majority_, previous_, majority_label_, majority_count_})
        state.put<int64_t>(v);
    }
    void restore(dataflow::StateReader& state, dataflow::Context&) override {
      expect_layout(state, "prequential_baselines", kLayout);
      const uint64_t n = state.get_count(16);
      for (uint64_t i = 0; i < n; ++i) {
        const auto label = state.get<int64_t>();
        const auto count = state.get<int64_t>();
        if (count < 1 || !counts_.emplace(label, count).second)
          state.fail("holds a damaged label count");
      }
      for (int64_t* v :
           {&n_, &no_change_, &majority_, &previous_, &majority_label_, &majority_count_}) {
        *v = state.get<int64_t>();
      }
      if (n_ < 0 || no_change_ < 0 || majority_ < 0 || no_change_ > n_ || majority_ > n_) {
        state.fail("holds impossible scores (" + std::to_string(n_) + " records)");
      }
    }

   private:
    static constexpr uint32_t kLayout = 1;

    const std::string& label_;
    std::map<int64_t, int64_t> counts_;
    int64_t n_ = 0, no_change_ = 0, majority_ = 0, previous_ = 0, majority_label_ = 0, majority_count_ = 0;
  };
  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo&) const override {
    return std::make_unique<Instance>(label_);
  }

 private:
  std::string label_;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> prequential_baselines(std::string label_column) {
  return std::make_shared<BaselinesDef>(std::move(label_column));
}

}  // namespace tensair::ops
