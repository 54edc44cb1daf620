// The detector interface: the factory, its one-line parameter errors, explicit input meaning.
#include "tensair/drift/detector.hpp"

#include <gtest/gtest.h>

#include "tensair/common/error.hpp"

namespace tensair::drift {
namespace {

std::string config_error(const std::string& name, const ParamMap& params) {
  try {
    make_detector(name, params);
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kConfig);
    return e.what();
  }
  return "(no error)";
}

TEST(DetectorTest, FactoryMakesEveryDetector) {
  for (const auto& name : detector_names()) {
    auto d = make_detector(name);
    EXPECT_EQ(d->name(), name);
    EXPECT_FALSE(d->update(1.0));
    EXPECT_EQ(d->state()["values"], 1);
    EXPECT_EQ(d->state()["detections"], 0);
    d->reset();
    EXPECT_EQ(d->state()["values"], 0);
  }
  EXPECT_EQ(make_detector("page_hinkley")->name(), "page-hinkley");
  EXPECT_EQ(make_detector("ph")->name(), "page-hinkley");
}

TEST(DetectorTest, ParameterErrorsAreOneClearLine) {
  EXPECT_EQ(config_error("adwn", {}),
            "unknown detector \"adwn\" (known: optwin, adwin, page-hinkley)");
  EXPECT_EQ(config_error("optwin", {{"rhoo", "0.5"}}),
            "unknown parameter \"rhoo\" for optwin (known: confidence, rho, w_length, min_window, "
            "detect, table, input, direction)");
  EXPECT_EQ(config_error("optwin", {{"rho", "abc"}}),
            "optwin parameter \"rho\": expected a number, got \"abc\"");
  EXPECT_EQ(config_error("optwin", {{"confidence", "1.5"}}),
            "optwin parameter \"confidence\": must be in (0, 1), got 1.5");
  EXPECT_EQ(config_error("optwin", {{"w_length", "20"}}),
            "optwin parameter \"w_length\": must be at least min_window (30), got 20");
  EXPECT_EQ(config_error("optwin", {{"detect", "median"}}),
            "optwin parameter \"detect\": expected one of \"mean\", \"mean_and_variance\", got "
            "\"median\"");
  EXPECT_EQ(config_error("adwin", {{"clock", "-3"}}),
            "adwin parameter \"clock\": expected a whole number, got \"-3\"");
  EXPECT_EQ(config_error("adwin", {{"direction", "up"}}),
            "adwin parameter \"direction\": expected one of \"increase\", \"decrease\", \"both\", "
            "got \"up\"");
  EXPECT_EQ(config_error("page-hinkley", {{"input", "accuracy"}}),
            "page-hinkley parameter \"input\": expected one of \"loss\", \"error\", \"correct\", "
            "got \"accuracy\"");
  EXPECT_EQ(config_error("page-hinkley", {{"threshold", "0"}}),
            "page-hinkley parameter \"threshold\": must be in (0, inf), got 0");
}

TEST(DetectorTest, ParametersRoundTrip) {
  for (const auto& name : detector_names()) {
    auto d = make_detector(name, {{"direction", "both"}, {"input", "error"}});
    nlohmann::json p = d->params();
    EXPECT_EQ(p["direction"], "both");
    EXPECT_EQ(p["input"], "error");
    ParamMap text;
    for (auto& [k, v] : p.items()) text[k] = v.is_string() ? v.get<std::string>() : v.dump();
    EXPECT_EQ(make_detector(name, text)->params(), p) << name;
    // Every key params() shows is a known one.
    const auto known = known_parameters(name);
    for (auto& [k, v] : p.items()) {
      EXPECT_NE(std::find(known.begin(), known.end(), k), known.end()) << name << " " << k;
    }
  }
  // Indicators default to the mean test for OPTWIN; losses test mean and variance.
  EXPECT_EQ(make_detector("optwin")->params()["detect"], "mean_and_variance");
  EXPECT_EQ(make_detector("optwin", {{"input", "error"}})->params()["detect"], "mean");
}

TEST(DetectorTest, InputMeaningIsExplicit) {
  // "correct" (1 = right) is turned into errors: a falling accuracy is an increase in error.
  for (const auto& name : detector_names()) {
    auto d = make_detector(name, {{"input", "correct"}});
    size_t found = 0;
    for (int i = 0; i < 4000; ++i) {
      // accuracy 1.0, then 0.0: the error rate jumps from 0 to 1
      found += d->update(i < 2000 ? 1.0 : 0.0);
    }
    EXPECT_EQ(found, 1u) << name;
    EXPECT_THROW(d->update(0.7), DataError) << name;
  }
  // The same values as errors: the error rate falls, not reported when watching increases.
  for (const auto& name : detector_names()) {
    auto d = make_detector(name, {{"input", "error"}});
    size_t found = 0;
    for (int i = 0; i < 4000; ++i) found += d->update(i < 2000 ? 1.0 : 0.0);
    EXPECT_EQ(found, 0u) << name;
  }
}

TEST(DetectorTest, NonFiniteLossIsAnError) {
  for (const auto& name : detector_names()) {
    auto d = make_detector(name);
    try {
      d->update(std::nan(""));
      ADD_FAILURE() << name << ": no error";
    } catch (const DataError& e) {
      EXPECT_EQ(std::string(e.what()),
                name + ": input value is nan (a loss must be a finite number)");
    }
  }
}

TEST(DetectorTest, KnownParameters) {
  EXPECT_EQ(known_parameters("adwin"),
            (std::vector<std::string>{"delta", "clock", "max_buckets", "min_window_length",
                                      "grace_period", "input", "direction"}));
  EXPECT_THROW(known_parameters("nope"), ConfigError);
}

}  // namespace
}  // namespace tensair::drift
