// The drift matching rule (tensair/drift/matching.hpp) and its reading of a run's
// metrics.jsonl (run_matching.hpp).
#include "tensair/drift/matching.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "tensair/common/error.hpp"
#include "tensair/drift/run_matching.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::drift {
namespace {

std::vector<std::optional<size_t>> found(const Matching& m) {
  std::vector<std::optional<size_t>> out;
  for (const auto& c : m.matches) out.push_back(c.detection);
  return out;
}

TEST(DriftMatchingTest, TheDemosDetectionsJustBeforeTheChangesFindThemWithTheShuffleTolerance) {
  // The demo: changes at 60,000 and 105,000, a 1,000-record shuffle buffer; OPTWIN fired on
  // the first shuffled records of each new concept.
  Matching m = match_detections({60000, 105000}, {104800, 59776}, {1000});
  EXPECT_EQ(found(m), (std::vector<std::optional<size_t>>{0, 1}));
  EXPECT_DOUBLE_EQ(m.matches[0].delay, -224);
  EXPECT_DOUBLE_EQ(m.matches[1].delay, -200);
  EXPECT_TRUE(m.false_alarms.empty());
  EXPECT_TRUE(m.repeats.empty());
  EXPECT_DOUBLE_EQ(m.mean_delay(), -212);
  // Without the tolerance, 59,776 is a false alarm and 104,800 finds the first change.
  m = match_detections({60000, 105000}, {59776, 104800});
  EXPECT_EQ(found(m), (std::vector<std::optional<size_t>>{1, std::nullopt}));
  EXPECT_EQ(m.false_alarms, (std::vector<size_t>{0}));
  EXPECT_EQ(m.missed(), 1u);
}

TEST(DriftMatchingTest, WindowsEndAtMaxDelayAndAtTheNextChangesWindow) {
  // Changes at 100 and 200, tolerance 10, max delay 50: windows [90, 150) and [190, 250).
  Matching m = match_detections({200, 100}, {80, 95, 120, 150, 189, 190, 260}, {10, 50});
  EXPECT_EQ(m.changes, (std::vector<double>{100, 200}));
  EXPECT_EQ(found(m), (std::vector<std::optional<size_t>>{1, 5}));  // 95 and 190
  EXPECT_EQ(m.repeats, (std::vector<size_t>{2}));                   // 120
  EXPECT_EQ(m.false_alarms, (std::vector<size_t>{0, 3, 4, 6}));     // 80, 150, 189, 260
  EXPECT_DOUBLE_EQ(m.matches[0].delay, -5);
  EXPECT_DOUBLE_EQ(m.matches[1].delay, -10);
  // A change announced twice is one change; no detections: all missed, NaN mean delay.
  m = match_detections({5, 5}, {});
  EXPECT_EQ(m.changes.size(), 1u);
  EXPECT_EQ(m.missed(), 1u);
  EXPECT_TRUE(std::isnan(m.mean_delay()));
  // No changes: every detection is a false alarm.
  EXPECT_EQ(match_detections({}, {1, 2}).false_alarms.size(), 2u);
}

TEST(DriftMatchingTest, BadRulesAndPositionsAreOneClearError) {
  auto message = [](const MatchRule& r, std::vector<double> c) {
    try {
      match_detections(std::move(c), {}, r);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({-1}, {}).find("tolerance must be a finite number >= 0"), std::string::npos);
  EXPECT_NE(message({0, -1}, {}).find("max_delay must be >= 0"), std::string::npos);
  EXPECT_NE(message({}, {std::nan("")}).find("a position is not a number"), std::string::npos);
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(DriftMatchingTest, ARunsLinesAreMatchedPerDetectorWithTheSourcesTolerance) {
  testing::TempDir dir;
  const auto metrics = dir.path() / "metrics.jsonl";
  write(metrics,
        R"({"t":0,"type":"job","event":"start"}
{"t":1,"kind":"concept_change","index":60000,"tolerance":1000,"operator":"stream","instance":0,"rank":0}
{"t":1.5,"kind":"concept_change","index":60000,"tolerance":1000,"operator":"stream","instance":1,"rank":1}
{"t":1.2,"kind":"drift","detector":"optwin","index":59776,"operator":"detector","instance":0,"rank":0}
{"t":2,"kind":"concept_change","index":105000,"tolerance":1000,"operator":"stream","instance":0,"rank":0}
{"t":2.2,"kind":"drift","detector":"optwin","index":104800,"operator":"detector","instance":0,"rank":0}
{"t":2.3,"kind":"drift","detector":"adwin","index":30000,"operator":"other","instance":0,"rank":0}
{"t":2.4,"kind":"model","loss":"not read here"}
{"t":2.5,"kind":"drift","detector":"optwin","ind)");
  RunMatches run = match_run(metrics);
  EXPECT_EQ(run.position, "index");
  EXPECT_DOUBLE_EQ(run.rule.tolerance, 1000);
  EXPECT_EQ(run.changes.size(), 2u);
  EXPECT_EQ(run.cut_lines, (std::vector<int64_t>{9}));
  ASSERT_EQ(run.detectors.size(), 2u);
  EXPECT_EQ(run.detectors[0].detector, "adwin");
  EXPECT_EQ(run.detectors[0].matching.false_alarms.size(), 1u);
  const auto& optwin = run.detectors[1];
  EXPECT_EQ(optwin.op, "detector");
  EXPECT_EQ(optwin.matching.found(), 2u);
  EXPECT_DOUBLE_EQ(optwin.matching.matches[0].delay, -224);
  // The JSON the scripts read.
  const auto j = run.to_json();
  EXPECT_EQ(j["rule"]["tolerance"], 1000);
  EXPECT_EQ(j["detectors"][1]["matches"][1]["detection"], 1);
  EXPECT_EQ(j["detectors"][1]["detections"][1]["index"], 104800);
  EXPECT_EQ(j["detectors"][1]["mean_delay"], -212);
  // --tolerance 0 overrides the sources'.
  EXPECT_EQ(match_run(metrics, 0.0).detectors[1].matching.found(), 1u);
  // Without an index on every line, positions are times and there is no tolerance.
  write(metrics, R"({"t":1,"kind":"concept_change"}
{"t":1.2,"kind":"drift","detector":"optwin","index":5}
)");
  run = match_run(metrics);
  EXPECT_EQ(run.position, "t");
  EXPECT_EQ(run.detectors.at(0).matching.found(), 1u);
  EXPECT_DOUBLE_EQ(run.detectors[0].matching.matches[0].delay, 1.2 - 1);
}

TEST(DriftMatchingTest, ABadLineInARunIsOneErrorNamingFileAndLine) {
  testing::TempDir dir;
  const auto metrics = dir.path() / "metrics.jsonl";
  auto error_of = [&](const std::string& text) {
    write(metrics, text);
    try {
      match_run(metrics);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string where = metrics.string() + ":2: ";
  EXPECT_EQ(error_of("{}\n{\"kind\": oops\n{}\n"), where + "not JSON: {\"kind\": oops");
  EXPECT_EQ(error_of("{}\n[1]\n"), where + "not a JSON object");
  EXPECT_EQ(error_of("{}\n{\"kind\":\"drift\",\"index\":\"abc\"}\n"),
            where + "\"index\" is not a number: \"abc\"");
  EXPECT_EQ(error_of("{}\n{\"kind\":\"drift\",\"index\":true}\n"),
            where + "\"index\" is not a number: true");
  // Fields of the wrong type elsewhere are not the matching's business: no throw.
  EXPECT_EQ(error_of("{\"kind\":\"drift\",\"index\":3,\"instance\":\"x\",\"detector\":4}\n"),
            "no error");
  EXPECT_EQ(error_of(""), "no error");
  std::filesystem::remove(metrics);
  EXPECT_THROW(match_run(metrics), IoError);
}

}  // namespace
}  // namespace tensair::drift
