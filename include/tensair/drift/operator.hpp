// The DriftDetector operator: watches a model's loss stream and tells the model to train again
// when the concept changes.
//
// Input "in": the Model's `metrics` rows (all replicas merged, in order of arrival; place the
// detector on one rank and route to it). Each row's `loss` is fed to the detector when its
// `phase` is watched. Outputs:
//   control  one row {command: "start"} per detection (plus "reset_optimizer" when asked),
//            for the models' `control` port (route with broadcast)
//   drift    one row per detection: index (values fed so far, 0-based), step, version, rank
//            of the row that triggered it, detector
// Every detection is also a {"kind":"drift", ...} line in metrics.jsonl, whose "index" is the
// triggering row's `records` (the replica's stream position) when the rows have it, and
// "values" the count of values fed before.
//
// Checkpoints: the detector's state (Detector::save_state) and the counters are saved, so a
// restored detector reports the same drifts at the same rows as an uninterrupted one.
#pragma once

#include <memory>
#include <string>

#include "tensair/dataflow/operator.hpp"
#include "tensair/drift/detector.hpp"

namespace tensair::drift {

struct DetectorOperatorOptions {
  std::string detector = "optwin";
  ParamMap params;                 // the detector's parameters (input, direction, ...)
  std::string column = "loss";     // the watched value
  // Which rows feed the detector: "predict" (the losses of a model that stopped training after
  // convergence, as in the reference; the detector starts afresh each time training stops),
  // "train", or "all".
  std::string watch = "predict";
  bool reset_optimizer = false;    // also send "reset_optimizer" on drift
  bool warmup = false;             // also send "warmup": the model ramps its learning rate up
};

std::shared_ptr<const dataflow::OperatorDef> detector_operator(DetectorOperatorOptions options);

// Registers the job-file type "drift_detector". Idempotent.
void register_job_types();

}  // namespace tensair::drift
