// The process-wide metrics registry (include/tensair/common/metrics_registry.hpp).
//
// Invariants
// - families_ and every family's series map are guarded by mu_; a series lives in a
//   unique_ptr, so the Gauge/Counter it holds never moves while the series exists.
// - Collectors are copied out under collectors_mu_ and run with no lock held (a collector
//   may call gauge()); running_ counts calls in progress so that remove_collector waits for
//   them, and a collector never runs after its handle is gone.
#include "tensair/common/metrics_registry.hpp"

#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>

namespace tensair::metrics {

namespace {

enum class Kind { kGauge, kCounter };

const char* kind_name(Kind k) { return k == Kind::kGauge ? "gauge" : "counter"; }

void atomic_add(std::atomic<double>& v, double d) {
  double cur = v.load(std::memory_order_relaxed);
  while (!v.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

// A series key: the label pairs as given (order matters for display, so two orders of the same
// pairs are two keys; callers use one order per family).
std::string label_key(const Labels& labels) {
  std::string k;
  for (const auto& [n, v] : labels) {
    k += n;
    k += '\x1f';
    k += v;
    k += '\x1e';
  }
  return k;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integers (the usual counter) print without an exponent or a fraction.
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // The shortest text that reads back as the same double.
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

// HELP text escaping: backslash and newline (quotes stay as they are).
std::string escape_help(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void Gauge::add(double d) { atomic_add(v_, d); }

void Counter::inc(double d) {
  if (d > 0) atomic_add(v_, d);
}

void Counter::set_total(double total) {
  double cur = v_.load(std::memory_order_relaxed);
  while (total > cur && !v_.compare_exchange_weak(cur, total, std::memory_order_relaxed)) {
  }
}

struct Registry::Impl {
  struct Series {
    Labels labels;
    Gauge gauge;
    Counter counter;
  };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, std::unique_ptr<Series>> series;  // by label_key, in key order
  };

  Series& find_or_add(std::string_view name, std::string_view help, const Labels& labels,
                      Kind kind) {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) {
      if (!valid_metric_name(name))
        throw std::invalid_argument("metrics: invalid metric name \"" + std::string(name) + "\"");
      it = families_.emplace(std::string(name), Family{kind, std::string(help), {}}).first;
    } else if (it->second.kind != kind) {
      throw std::invalid_argument("metrics: \"" + std::string(name) + "\" is a " +
                                  kind_name(it->second.kind) + ", not a " + kind_name(kind));
    }
    std::string key = label_key(labels);
    auto& series = it->second.series;
    auto s = series.find(key);
    if (s == series.end()) {
      for (const auto& [n, v] : labels) {
        if (!valid_label_name(n)) {
          throw std::invalid_argument("metrics: invalid label name \"" + n + "\" on \"" +
                                      std::string(name) + "\"");
        }
      }
      auto fresh = std::make_unique<Series>();
      fresh->labels = labels;
      s = series.emplace(std::move(key), std::move(fresh)).first;
    }
    return *s->second;
  }

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;

  std::mutex collectors_mu_;
  std::condition_variable collectors_cv_;
  std::map<uint64_t, std::shared_ptr<std::function<void()>>> collectors_;
  uint64_t next_collector_ = 1;
  int running_ = 0;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  return impl_->find_or_add(name, help, labels, Kind::kGauge).gauge;
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  return impl_->find_or_add(name, help, labels, Kind::kCounter).counter;
}

bool Registry::remove(std::string_view name, const Labels& labels) {
  std::lock_guard lock(impl_->mu_);
  auto it = impl_->families_.find(name);
  if (it == impl_->families_.end()) return false;
  return it->second.series.erase(label_key(labels)) > 0;
}

size_t Registry::remove_matching(const Labels& subset) {
  std::lock_guard lock(impl_->mu_);
  size_t dropped = 0;
  for (auto& [name, family] : impl_->families_) {
    for (auto s = family.series.begin(); s != family.series.end();) {
      bool all = true;
      for (const auto& want : subset) {
        bool found = false;
        for (const auto& have : s->second->labels) found = found || have == want;
        all = all && found;
      }
      if (all) {
        s = family.series.erase(s);
        ++dropped;
      } else {
        ++s;
      }
    }
  }
  return dropped;
}

CollectorHandle Registry::add_collector(std::function<void()> collect) {
  std::lock_guard lock(impl_->collectors_mu_);
  const uint64_t id = impl_->next_collector_++;
  impl_->collectors_[id] = std::make_shared<std::function<void()>>(std::move(collect));
  return CollectorHandle(this, id);
}

void Registry::remove_collector(uint64_t id) {
  std::unique_lock lock(impl_->collectors_mu_);
  impl_->collectors_.erase(id);
  // A render() may be running this collector now: wait until no collector runs. (Renders are
  // rare and short; this is a scrape's length at most.)
  impl_->collectors_cv_.wait(lock, [this] { return impl_->running_ == 0; });
}

std::string Registry::render() {
  {
    std::vector<std::shared_ptr<std::function<void()>>> run;
    {
      std::lock_guard lock(impl_->collectors_mu_);
      for (const auto& [id, c] : impl_->collectors_) run.push_back(c);
      ++impl_->running_;
    }
    for (const auto& c : run) (*c)();
    {
      std::lock_guard lock(impl_->collectors_mu_);
      --impl_->running_;
    }
    impl_->collectors_cv_.notify_all();
  }
  std::string out;
  std::lock_guard lock(impl_->mu_);
  for (const auto& [name, family] : impl_->families_) {
    if (family.series.empty()) continue;
    out += "# HELP " + name + " " + escape_help(family.help) + "\n";
    out += "# TYPE " + name + " " + kind_name(family.kind) + "\n";
    for (const auto& [key, s] : family.series) {
      out += name;
      if (!s->labels.empty()) {
        out += '{';
        for (size_t i = 0; i < s->labels.size(); ++i) {
          if (i) out += ',';
          out += s->labels[i].first + "=\"" + escape_label_value(s->labels[i].second) + "\"";
        }
        out += '}';
      }
      out += ' ';
      out += format_value(family.kind == Kind::kGauge ? s->gauge.value() : s->counter.value());
      out += '\n';
    }
  }
  return out;
}

double Registry::value(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(impl_->mu_);
  auto it = impl_->families_.find(name);
  if (it == impl_->families_.end()) return std::numeric_limits<double>::quiet_NaN();
  auto s = it->second.series.find(label_key(labels));
  if (s == it->second.series.end()) return std::numeric_limits<double>::quiet_NaN();
  return it->second.kind == Kind::kGauge ? s->second->gauge.value() : s->second->counter.value();
}

CollectorHandle::CollectorHandle(CollectorHandle&& other) noexcept
    : registry_(other.registry_), id_(other.id_) {
  other.registry_ = nullptr;
}

CollectorHandle& CollectorHandle::operator=(CollectorHandle&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

void CollectorHandle::reset() {
  if (registry_) registry_->remove_collector(id_);
  registry_ = nullptr;
}

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: operators may publish at exit
  return *r;
}

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace tensair::metrics
