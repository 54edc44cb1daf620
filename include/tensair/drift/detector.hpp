// Concept-drift detectors: one interface for OPTWIN, ADWIN and Page-Hinkley.
//
// A detector watches one stream of numbers, in practice a model's per-step loss or its
// prequential 0/1 error, and says at which value the level changed. What users of other
// detector libraries trip over is explicit here:
//
//  * the meaning of the input is a parameter (`input`): a loss (any finite number, larger is
//    worse), an error indicator (0 or 1, 1 = wrong) or a correctness indicator (0 or 1,
//    1 = right, turned into an error 1 - x on entry). Indicators are checked: a value other
//    than 0 or 1 is a DataError, and so is a NaN or infinite loss (a NaN must never look like
//    "no drift");
//  * the change reported is a parameter (`direction`): "increase" (the loss or error rate went
//    up: the model got worse; the default), "decrease" or "both". A change in the other
//    direction is not reported; each detector then re-bases its window as its algorithm does
//    (documented per detector) so it keeps watching the current level;
//  * after a reported detection the detector resets by itself, so one change is reported once
//    and the next report needs fresh evidence.
//
// Detectors are not thread-safe: one detector is fed from one thread. They do not use MPI or
// LibTorch. Parameters are given as text (a `--param k=v` list or job-file keys) to
// make_detector(), which checks every key and value.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace tensair::drift {

// What the values given to Detector::update() mean.
enum class Input {
  kLoss,     // a finite real number; larger is worse (a training or prediction loss)
  kError,    // 0 or 1: 1 = the prediction was wrong
  kCorrect,  // 0 or 1: 1 = the prediction was right; converted to an error (1 - x) on entry
};

// Which change of the loss or error level is reported.
enum class Direction {
  kIncrease,  // the loss or error rate goes up (the model got worse); the default
  kDecrease,  // it goes down
  kBoth,      // either way
};

// "loss", "error", "correct" / "increase", "decrease", "both"
const char* to_string(Input input);
const char* to_string(Direction direction);

// Parameters as text, key -> value ("rho" -> "0.5").
using ParamMap = std::map<std::string, std::string>;

// The parameters every detector has.
struct CommonParams {
  Input input = Input::kLoss;
  Direction direction = Direction::kIncrease;
};

class Detector {
 public:
  virtual ~Detector() = default;

  // Feeds the next value. Returns true when a change in the watched direction is detected at
  // this value; the detector has then already reset (see each detector for what it keeps), so
  // the same change is not reported again. Throws DataError for a NaN or infinite value, or a
  // value other than 0 or 1 when the input is an error or correctness indicator.
  virtual bool update(double value) = 0;

  // Forgets every value seen, as if newly constructed; parameters are kept.
  virtual void reset() = 0;

  // "optwin", "adwin" or "page-hinkley" (what make_detector() takes).
  virtual std::string name() const = 0;

  // The effective parameters, defaults included, keyed as make_detector() takes them.
  virtual nlohmann::json params() const = 0;

  // The current state for logs, e.g. {"window": 812, "mean_hist": 0.41, ...}. Always has
  // "values" (values seen since construction or reset()) and "detections" (reported since then).
  virtual nlohmann::json state() const = 0;

  // Checkpoints. save_state() returns everything the detector holds (window, sums, counters)
  // as bytes in a small format of the detectors' own, headed by the detector's name and
  // parameters. load_state() puts a detector of the same kind and parameters into that state:
  // fed the same values afterwards, it reports the same detections with the same state() as
  // the saved one would have. Throws DataError, one line ("optwin state: ..."), for bytes that
  // are damaged or were saved by another detector or with other parameters; the detector is
  // then unusable until reset().
  virtual std::string save_state() const = 0;
  virtual void load_state(std::string_view state) = 0;
};

// Builds a detector by name ("optwin", "adwin", "page-hinkley"; "page_hinkley" and "ph" are
// accepted too) from text parameters. Throws ConfigError with one line naming the problem:
//   unknown detector "adwn" (known: optwin, adwin, page-hinkley)
//   unknown parameter "rhoo" for optwin (known: confidence, rho, w_length, ...)
//   optwin parameter "rho": expected a number, got "abc"
std::unique_ptr<Detector> make_detector(const std::string& name, const ParamMap& params = {});

// The detector names make_detector() takes (canonical spellings).
std::vector<std::string> detector_names();

// The parameter keys one detector takes (its own, then "input" and "direction"). Throws
// ConfigError for an unknown detector.
std::vector<std::string> known_parameters(const std::string& name);

namespace detail {

[[noreturn]] void throw_bad_input(const char* detector, Input input, double value);

// Checks one input value and converts it to "larger is worse" units: a correctness indicator
// becomes an error indicator. Inline: it runs once per update.
inline double checked_input(double value, Input input, const char* detector) {
  if (input == Input::kLoss) {
    if (!std::isfinite(value)) [[unlikely]]
      throw_bad_input(detector, input, value);
    return value;
  }
  if (value != 0.0 && value != 1.0) [[unlikely]]
    throw_bad_input(detector, input, value);
  return input == Input::kCorrect ? 1.0 - value : value;
}

}  // namespace detail
}  // namespace tensair::drift
