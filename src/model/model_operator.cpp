// The Model operator's definition: ports, option checks, schemas. The running replica is
// ModelInstance (model_instance.hpp); what replicas exchange is Replication (replication.hpp).
#include <nlohmann/json.hpp>

#include "model/model_instance.hpp"
#include "tensair/common/error.hpp"
#include "tensair/model/model.hpp"

namespace tensair::model {
namespace {

using dataflow::DType;
using dataflow::PortSpec;
using dataflow::Schema;

class ModelDef final : public dataflow::OperatorDef {
 public:
  explicit ModelDef(ModelOptions o) : o_(std::move(o)) {
    if (o_.broadcast_every < 1) throw ConfigError("broadcast_every must be at least 1");
    if (o_.max_staleness && o_.broadcast_every != 1) {
      throw ConfigError(
          "max_staleness needs broadcast_every = 1 (the bound counts single gradients)");
    }
    if (o_.max_staleness && o_.mode != Mode::kDasgd)
      throw ConfigError("max_staleness applies to mode = \"dasgd\" only");
    if (o_.epochs_for_convergence < 2)
      throw ConfigError("epochs_for_convergence must be at least 2");
    if (o_.epoch_size < 1) throw ConfigError("epoch_size must be positive");
    if (o_.label.empty() && o_.loss != Loss::kSgns) {
      throw ConfigError(std::string("the ") + name_of(o_.loss) + " loss needs a label column");
    }
    if (o_.inputs.empty())
      throw ConfigError("name the columns fed to the network (features = [...])");
  }

  std::string type() const override { return "model"; }
  std::vector<PortSpec> inputs() const override {
    Schema train;
    for (const auto& c : o_.inputs) train.push_back({c, DType::kFloat32, {}, true});
    return {{"train", std::nullopt, true, 0},
            {"predict", std::nullopt, true, 0},
            {"evaluate", std::nullopt, true, 0},
            {"control", Schema{{"command", DType::kString, {}}}, true, 2},
            {"exchange", std::nullopt, true, 3}};
  }
  std::vector<PortSpec> outputs() const override {
    return {{"predictions", std::nullopt, true},
            {"metrics", metrics_schema(), true},
            {"exchange", std::nullopt, true}};
  }
  std::vector<std::pair<std::string, std::string>> peer_edges() const override {
    if (o_.mode == Mode::kLocal) return {};
    return {{"exchange", "exchange"}};
  }
  // The exchange between replicas, and a detector's control input fed from the metrics output.
  bool supports_cycles() const override { return true; }
  std::vector<std::optional<Schema>> infer_outputs(
      const std::vector<std::optional<Schema>>& in) const override {
    // Train, predict and evaluate batches must carry the input columns (and the label for
    // train and evaluate).
    const char* names[] = {"train", "predict", "evaluate"};
    for (size_t p = 0; p < 3 && p < in.size(); ++p) {
      if (!in[p]) continue;
      std::vector<std::string> need = o_.inputs;
      if (p != kPredict && !o_.label.empty()) need.push_back(o_.label);
      for (const auto& c : need) {
        if (!dataflow::find_column(*in[p], c)) {
          throw ConfigError(std::string("input ") + names[p] + ": column \"" + c +
                            "\" is not among the columns arriving (" +
                            dataflow::schema_to_string(*in[p]) + ")");
        }
      }
      check_first_input(names[p], *dataflow::find_column(*in[p], o_.inputs[0]));
    }
    return {std::nullopt, metrics_schema(), std::nullopt};
  }
  std::string describe() const override {
    std::string s = "network=" + o_.network.kind + " loss=" + name_of(o_.loss) +
                    " optimizer=" + name_of(o_.optimizer.kind) +
                    " lr=" + std::to_string(o_.optimizer.lr) + " mode=" + name_of(o_.mode) +
                    " exchange=" + name_of(o_.exchange) + " training=" + name_of(o_.training);
    if (o_.max_staleness) s += " max_staleness=" + std::to_string(*o_.max_staleness);
    if (o_.device != "cpu") s += " device=" + o_.device;
    return s;
  }

  std::unique_ptr<dataflow::Operator> instantiate(
      const dataflow::InstanceInfo& info) const override;

  const ModelOptions& options() const { return o_; }

 private:
  // The built-ins' first input has a known record shape: a column that arrives with another
  // is refused here, naming that column (the network would refuse its first batch).
  void check_first_input(const char* port, const dataflow::ColumnSpec& c) const {
    if (c.any_shape) return;
    int64_t elements = 1;
    for (int64_t d : c.record_shape) {
      if (d < 0) return;  // not known before the run
      elements *= d;
    }
    std::string want;
    if (o_.network.kind == "mlp" && !o_.network.layers.empty() &&
        elements != o_.network.layers[0]) {
      want = "the mlp's first layer takes " + std::to_string(o_.network.layers[0]) +
             " values per record (layers[0])";
    } else if (o_.network.kind == "cifar_cnn" &&
               c.record_shape != std::vector<int64_t>{3, 32, 32}) {
      want = "cifar_cnn takes [3,32,32] (channels first; cifar10_source layout = \"chw\")";
    }
    if (want.empty()) return;
    throw ConfigError(std::string("input ") + port + ": column \"" + c.name + "\" arrives as " +
                      c.to_string() + ", but " + want);
  }

  ModelOptions o_;
};

std::unique_ptr<dataflow::Operator> ModelDef::instantiate(
    const dataflow::InstanceInfo& info) const {
  return std::make_unique<ModelInstance>(o_, info);
}

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> model_operator(ModelOptions options) {
  return std::make_shared<ModelDef>(std::move(options));
}

}  // namespace tensair::model
