#include "tensair/ops/collect.hpp"

namespace tensair::ops {

using dataflow::BatchPtr;

void Collection::add(int /*instance*/, BatchPtr batch) {
  std::lock_guard lock(mu_);
  batches_.push_back(std::move(batch));
}

std::vector<BatchPtr> Collection::batches() const {
  std::lock_guard lock(mu_);
  return batches_;
}

dataflow::Batch Collection::rows() const { return dataflow::concat_batches(batches()); }

int64_t Collection::num_rows() const {
  std::lock_guard lock(mu_);
  int64_t n = 0;
  for (const auto& b : batches_) n += b->rows();
  return n;
}

void Collection::clear() {
  std::lock_guard lock(mu_);
  batches_.clear();
}

namespace {

class CollectDef final : public dataflow::OperatorDef {
 public:
  CollectDef(std::shared_ptr<Collection> into, std::optional<dataflow::Schema> columns)
      : into_(std::move(into)), columns_(std::move(columns)) {}
  std::string type() const override { return "collect"; }
  std::vector<dataflow::PortSpec> inputs() const override { return {{"in", columns_}}; }

  class Instance final : public dataflow::Operator {
   public:
    Instance(std::shared_ptr<Collection> into, int instance) : into_(std::move(into)), instance_(instance) {}
    void process(int, const BatchPtr& batch, dataflow::Context&) override { into_->add(instance_, batch); }

   private:
    std::shared_ptr<Collection> into_;
    int instance_;
  };

  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo& info) const override {
    return std::make_unique<Instance>(into_, info.instance);
  }

 private:
  std::shared_ptr<Collection> into_;
  std::optional<dataflow::Schema> columns_;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> collect(std::shared_ptr<Collection> into,
                                                     std::optional<dataflow::Schema> columns) {
  return std::make_shared<CollectDef>(std::move(into), std::move(columns));
}

}  // namespace tensair::ops
