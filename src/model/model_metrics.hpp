// A model replica's live gauges in the metrics registry (GET /metrics; docs/metrics.md), looked
// up once so that each update is one relaxed atomic store.
#pragma once

#include <string>

#include "tensair/common/metrics_registry.hpp"
#include "tensair/dataflow/operator.hpp"

namespace tensair::model {

struct ModelMetrics {
  explicit ModelMetrics(const dataflow::InstanceInfo& info) {
    auto& r = metrics::registry();
    const metrics::Labels& l = labels_ = {{"operator", info.name},
                                          {"instance", std::to_string(info.instance)},
                                          {"rank", std::to_string(info.rank)}};
    version = &r.gauge("tensair_model_version",
                       "Model version: updates applied (own steps plus peers' updates)", l);
    steps = &r.counter("tensair_model_steps_total", "Own training steps of this replica", l);
    records = &r.counter("tensair_model_records_total",
                         "Records trained on or predicted by this replica", l);
    samples_per_s = &r.gauge("tensair_model_samples_per_second",
                             "Records per second through this replica (about 1 s windows)", l);
    steps_per_s = &r.gauge("tensair_model_steps_per_second",
                           "Own training steps per second (about 1 s windows)", l);
    staleness_mean = &r.gauge("tensair_model_staleness_mean",
                              "Mean staleness of the peers' updates applied lately", l);
    staleness_max = &r.gauge("tensair_model_staleness_max",
                             "Largest staleness of the peers' updates applied lately", l);
    training = &r.gauge("tensair_model_training",
                        "1 while the replica trains, 0 while it "
                        "only predicts",
                        l);
  }
  // The loss and accuracy gauges of a phase ("train", "predict", "eval"), made on its first
  // batch, so that a phase that never ran has no series.
  metrics::Gauge& loss(const char* phase) {
    return phase_gauge(loss_, "tensair_model_loss", "Mean loss of the latest batch, by phase",
                       phase);
  }
  metrics::Gauge& accuracy(const char* phase) {
    return phase_gauge(accuracy_, "tensair_model_accuracy",
                       "Accuracy of the latest batch (NaN when not a classifier)", phase);
  }

 private:
  metrics::Gauge& phase_gauge(metrics::Gauge* (&cache)[3], const char* name, const char* help,
                              const char* phase) {
    const std::string p = phase;
    const int i = p == "train" ? 0 : p == "predict" ? 1 : 2;
    if (!cache[i]) {
      metrics::Labels l = labels_;
      l.emplace_back("phase", p);
      cache[i] = &metrics::registry().gauge(name, help, l);
    }
    return *cache[i];
  }
  metrics::Labels labels_;
  metrics::Gauge* loss_[3] = {};
  metrics::Gauge* accuracy_[3] = {};

 public:
  metrics::Gauge *version, *samples_per_s, *steps_per_s, *staleness_mean, *staleness_max, *training;
  metrics::Counter *steps, *records;
};

}  // namespace tensair::model
