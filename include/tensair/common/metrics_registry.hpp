// The process-wide registry of live metrics: named gauges and counters with labels, rendered in
// the Prometheus text exposition format (version 0.0.4) for `GET /metrics` (docs/serving.md).
//
// Publishing a value is a one-liner from any thread:
//
//   tensair::metrics::registry()
//       .gauge("tensair_kafka_consumer_lag", "Messages behind the partition's end",
//              {{"operator", op}, {"topic", t}, {"partition", "3"}})
//       .set(lag);
//
// The first call for a (name, labels) pair creates the series; later calls find it (a hash
// look-up under the registry's mutex). A hot path keeps the returned reference and calls
// set()/add()/inc() on it, which is one relaxed atomic operation and takes no lock.
//
// Contracts
// - Names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do not start
//   with "__"; a bad name, or one name used both as a gauge and as a counter, is a programmer
//   error and throws std::invalid_argument naming it (a family's first help text is kept).
//   Label values are any UTF-8 text: render() escapes them (backslash, double quote, newline).
// - A returned Gauge& / Counter& stays valid until the series is removed with remove() or
//   remove_matching(); series are never freed otherwise, so a reference kept by an operator
//   stays valid for the life of the process.
// - Counters only go up (inc() with a negative amount is ignored); a counter that mirrors a
//   count kept elsewhere (the executor's records_in) uses set_total(), which also never lowers it.
// - Collectors are callbacks run by render() just before it reads the series, so a component
//   whose numbers already live elsewhere (the executor's per-instance counters) copies them in
//   at scrape time instead of on every record. A collector runs on the scraping (HTTP) thread
//   with no registry lock held; it must be thread-safe with respect to what it reads. It is
//   removed when its CollectorHandle is destroyed, which waits for a running render() to end:
//   do not destroy it while holding a lock the collector takes.
//
// Threading: every member may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tensair::metrics {

// Label pairs, in the order given (render() prints them in that order).
using Labels = std::vector<std::pair<std::string, std::string>>;

// A value that goes up and down (queue depth, loss, consumer lag).
class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double d);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// A value that only goes up (records in, requests served). Rendered with TYPE counter.
class Counter {
 public:
  void inc(double d = 1);
  // Raises the value to `total` (a count kept elsewhere); never lowers it.
  void set_total(double total);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Registry;

// Keeps a collector registered; destroying it (or reset()) unregisters it.
class CollectorHandle {
 public:
  CollectorHandle() = default;
  CollectorHandle(CollectorHandle&& other) noexcept;
  CollectorHandle& operator=(CollectorHandle&& other) noexcept;
  CollectorHandle(const CollectorHandle&) = delete;
  CollectorHandle& operator=(const CollectorHandle&) = delete;
  ~CollectorHandle() { reset(); }
  void reset();

 private:
  friend class Registry;
  CollectorHandle(Registry* r, uint64_t id) : registry_(r), id_(id) {}
  Registry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The series (name, labels), created at 0 on first use. Throws std::invalid_argument for a
  // bad name or label name, or a name already registered with the other type.
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});

  // Drops one series; a reference to it must no longer be used. False when it did not exist.
  bool remove(std::string_view name, const Labels& labels);
  // Drops every series of every family whose labels include all of `subset` (e.g. all series of
  // one operator at the end of a job: {{"operator", "model"}}). Returns how many were dropped.
  size_t remove_matching(const Labels& subset);

  // Registers `collect`, run at the start of every render(). See the contract above.
  [[nodiscard]] CollectorHandle add_collector(std::function<void()> collect);

  // Every family in name order, as Prometheus text: "# HELP", "# TYPE" and one line per series
  // (name{labels} value). Values are printed with full precision (NaN, +Inf, -Inf as
  // Prometheus spells them). Families without series are left out.
  std::string render();

  // The value of one series, NaN when it does not exist (for tests).
  double value(std::string_view name, const Labels& labels = {}) const;

 private:
  friend class CollectorHandle;
  void remove_collector(uint64_t id);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The process's registry (created on first use, never destroyed).
Registry& registry();

// True when `name` is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
bool valid_metric_name(std::string_view name);
// True when `name` is a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__").
bool valid_label_name(std::string_view name);
// A label value escaped for the text format: \ -> \\, " -> \", newline -> \n.
std::string escape_label_value(std::string_view value);

}  // namespace tensair::metrics
