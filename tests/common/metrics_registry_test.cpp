// The metrics registry: series creation, counters that only go up, collectors, escaping and
// the Prometheus text it renders (the strict format check runs against a live job in
// tests/e2e/serving_test.sh).
#include "tensair/common/metrics_registry.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace tensair::metrics {
namespace {

TEST(MetricsRegistryTest, GaugeSetByNameAndLabelsIsOneSeries) {
  Registry r;
  r.gauge("tensair_test_lag", "lag", {{"topic", "t"}, {"partition", "3"}}).set(5);
  r.gauge("tensair_test_lag", "lag", {{"topic", "t"}, {"partition", "3"}}).add(2);
  r.gauge("tensair_test_lag", "lag", {{"topic", "t"}, {"partition", "4"}}).set(1);
  EXPECT_EQ(r.value("tensair_test_lag", {{"topic", "t"}, {"partition", "3"}}), 7);
  EXPECT_EQ(r.render(),
            "# HELP tensair_test_lag lag\n"
            "# TYPE tensair_test_lag gauge\n"
            "tensair_test_lag{topic=\"t\",partition=\"3\"} 7\n"
            "tensair_test_lag{topic=\"t\",partition=\"4\"} 1\n");
}

TEST(MetricsRegistryTest, CountersNeverGoDown) {
  Registry r;
  Counter& c = r.counter("tensair_test_total", "n");
  c.inc(3);
  c.inc(-1);
  c.set_total(2);
  EXPECT_EQ(c.value(), 3);
  c.set_total(10);
  EXPECT_EQ(c.value(), 10);
}

TEST(MetricsRegistryTest, RefusesBadNamesAndTypeClashes) {
  Registry r;
  EXPECT_THROW(r.gauge("1bad", "x"), std::invalid_argument);
  EXPECT_THROW(r.gauge("bad-name", "x"), std::invalid_argument);
  EXPECT_THROW(r.gauge("ok", "x", {{"__reserved", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.gauge("ok", "x", {{"a-b", "v"}}), std::invalid_argument);
  r.gauge("tensair_test_g", "x");
  EXPECT_THROW(r.counter("tensair_test_g", "x"), std::invalid_argument);
  EXPECT_TRUE(valid_metric_name("a:b_c9"));
  EXPECT_FALSE(valid_metric_name(""));
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelp) {
  Registry r;
  r.gauge("tensair_test_e", "line one\nback\\slash", {{"path", "a\"b\\c\nd"}}).set(0.5);
  EXPECT_EQ(r.render(),
            "# HELP tensair_test_e line one\\nback\\\\slash\n"
            "# TYPE tensair_test_e gauge\n"
            "tensair_test_e{path=\"a\\\"b\\\\c\\nd\"} 0.5\n");
}

TEST(MetricsRegistryTest, SpecialValuesUsePrometheusSpelling) {
  Registry r;
  r.gauge("tensair_test_n", "x", {{"k", "nan"}}).set(std::nan(""));
  r.gauge("tensair_test_n", "x", {{"k", "inf"}}).set(INFINITY);
  r.gauge("tensair_test_n", "x", {{"k", "ninf"}}).set(-INFINITY);
  const std::string text = r.render();
  EXPECT_NE(text.find("{k=\"nan\"} NaN\n"), std::string::npos);
  EXPECT_NE(text.find("{k=\"inf\"} +Inf\n"), std::string::npos);
  EXPECT_NE(text.find("{k=\"ninf\"} -Inf\n"), std::string::npos);
}

TEST(MetricsRegistryTest, CollectorsRunAtRenderUntilTheirHandleGoes) {
  Registry r;
  int calls = 0;
  {
    CollectorHandle h = r.add_collector([&] { r.gauge("tensair_test_c", "x").set(++calls); });
    EXPECT_NE(r.render().find("tensair_test_c 1\n"), std::string::npos);
    EXPECT_NE(r.render().find("tensair_test_c 2\n"), std::string::npos);
  }
  r.render();
  EXPECT_EQ(calls, 2);
}

TEST(MetricsRegistryTest, RemoveMatchingDropsAnOperatorsSeries) {
  Registry r;
  r.gauge("tensair_test_a", "x", {{"operator", "m"}, {"instance", "0"}}).set(1);
  r.counter("tensair_test_b", "x", {{"operator", "m"}}).inc();
  r.gauge("tensair_test_a", "x", {{"operator", "other"}}).set(1);
  EXPECT_EQ(r.remove_matching({{"operator", "m"}}), 2u);
  EXPECT_TRUE(std::isnan(r.value("tensair_test_a", {{"operator", "m"}, {"instance", "0"}})));
  EXPECT_EQ(r.value("tensair_test_a", {{"operator", "other"}}), 1);
  EXPECT_TRUE(r.remove("tensair_test_a", {{"operator", "other"}}));
  EXPECT_EQ(r.render(), "");  // families without series are left out
}

TEST(MetricsRegistryTest, ConcurrentUpdatesAreNotLost) {
  Registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < 10000; ++i) {
        r.counter("tensair_test_total", "n", {{"t", std::to_string(t % 2)}}).inc();
        if (i % 100 == 0) r.render();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(r.value("tensair_test_total", {{"t", "0"}}) +
                r.value("tensair_test_total", {{"t", "1"}}),
            40000);
}

}  // namespace
}  // namespace tensair::metrics
