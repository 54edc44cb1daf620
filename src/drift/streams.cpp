#include "tensair/drift/streams.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <numbers>
#include <random>

#include "tensair/common/error.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/common/paths.hpp"

namespace tensair::drift {

namespace {

// Portable sampling: std::mt19937_64's output is fixed by the standard, the distributions are
// not, so uniform and normal draws are done here.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double uniform() {  // [0, 1) with 53 random bits
    return static_cast<double>(gen_() >> 11) * 0x1.0p-53;
  }
  double normal() {  // Box-Muller, both values used
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    double u1 = 0;
    while (u1 <= 0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2 * std::log(u1));
    spare_ = r * std::sin(2 * std::numbers::pi * u2);
    have_spare_ = true;
    return r * std::cos(2 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 gen_;
  bool have_spare_ = false;
  double spare_ = 0;
};

uint64_t name_seed(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

// Parameter of segment i at position j of that segment, with a linear transition from i-1.
double blend(const std::vector<double>& p, size_t i, size_t j, size_t transition) {
  const double now = p.size() == 1 ? p[0] : p[i];
  if (i == 0 || j >= transition || p.size() == 1) return now;
  const double before = p[i - 1];
  const double w = static_cast<double>(j + 1) / static_cast<double>(transition + 1);
  return before + (now - before) * w;
}

std::vector<size_t> segment_starts(size_t segments, size_t length) {
  std::vector<size_t> d;
  for (size_t i = 1; i < segments; ++i) d.push_back(i * length);
  return d;
}

}  // namespace

LabelledStream gaussian_stream(std::string name, const std::vector<double>& means,
                               const std::vector<double>& sds, size_t segment_length,
                               size_t transition, uint64_t seed) {
  TENSAIR_ASSERT(!means.empty() && (sds.size() == 1 || sds.size() == means.size()),
                 "gaussian_stream: one sd or one per segment");
  LabelledStream s;
  s.name = std::move(name);
  s.input = Input::kLoss;
  s.transition = transition;
  s.drifts = segment_starts(means.size(), segment_length);
  Rng rng(seed);
  s.values.reserve(means.size() * segment_length);
  for (size_t i = 0; i < means.size(); ++i) {
    for (size_t j = 0; j < segment_length; ++j) {
      const double mu = blend(means, i, j, transition);
      const double sd = blend(sds, i, j, transition);
      s.values.push_back(mu + sd * rng.normal());
    }
  }
  return s;
}

LabelledStream bernoulli_stream(std::string name, const std::vector<double>& rates,
                                size_t segment_length, size_t transition, uint64_t seed) {
  TENSAIR_ASSERT(!rates.empty(), "bernoulli_stream: no rates");
  LabelledStream s;
  s.name = std::move(name);
  s.input = Input::kError;
  s.transition = transition;
  s.drifts = segment_starts(rates.size(), segment_length);
  Rng rng(seed);
  s.values.reserve(rates.size() * segment_length);
  for (size_t i = 0; i < rates.size(); ++i) {
    for (size_t j = 0; j < segment_length; ++j) {
      s.values.push_back(rng.uniform() < blend(rates, i, j, transition) ? 1.0 : 0.0);
    }
  }
  return s;
}

std::vector<LabelledStream> synthetic_streams(bool quick, uint64_t seed) {
  const size_t seg = quick ? 5000 : 10000;
  const size_t segments = quick ? 5 : 10;
  const size_t error_segments = quick ? 5 : 8;
  const size_t stationary = quick ? 20000 : 100000;
  const size_t gradual = 2000;
  std::vector<LabelledStream> out;
  auto series = [](size_t n, double first, double step) {
    std::vector<double> v;
    for (size_t i = 0; i < n; ++i) v.push_back(first + step * static_cast<double>(i));
    return v;
  };

  auto add = [&](LabelledStream s, std::string description, Direction direction, bool labelled,
                 size_t max_delay) {
    s.description = std::move(description);
    s.direction = direction;
    s.labelled = labelled;
    s.max_delay = max_delay;
    out.push_back(std::move(s));
  };
  const auto up = Direction::kIncrease;
  add(gaussian_stream("gauss_abrupt", series(segments, 1.0, 0.2), {0.2}, seg, 0,
                      name_seed("gauss_abrupt", seed)),
      "Gaussian loss, mean +1 sd per segment, abrupt", up, true, 1000);
  add(gaussian_stream("gauss_abrupt_small", series(segments, 1.0, 0.1), {0.2}, seg, 0,
                      name_seed("gauss_abrupt_small", seed)),
      "Gaussian loss, mean +0.5 sd per segment, abrupt", up, true, 1000);
  add(gaussian_stream("gauss_gradual", series(segments, 1.0, 0.2), {0.2}, seg, gradual,
                      name_seed("gauss_gradual", seed)),
      "Gaussian loss, mean +1 sd per segment over 2,000 values", up, true, gradual + 1000);
  std::vector<double> sds;
  for (size_t i = 0; i < (quick ? 4u : 5u); ++i)
    sds.push_back(0.2 * std::ldexp(1.0, static_cast<int>(i)));
  add(gaussian_stream("gauss_variance", std::vector<double>(sds.size(), 1.0), sds,
                      quick ? seg : 2 * seg, 0, name_seed("gauss_variance", seed)),
      "Gaussian loss, mean 1, sd doubles per segment", Direction::kBoth, true, 1000);
  add(gaussian_stream("gauss_none", {1.0}, {0.2}, stationary, 0, name_seed("gauss_none", seed)),
      "Gaussian loss N(1, 0.2^2), no drift", up, true, 1000);
  add(bernoulli_stream("error_abrupt", series(error_segments, 0.05, 0.1), seg, 0,
                       name_seed("error_abrupt", seed)),
      "0/1 errors, rate +0.1 per segment from 0.05, abrupt", up, true, 1000);
  add(bernoulli_stream("error_gradual", series(error_segments, 0.05, 0.1), seg, gradual,
                       name_seed("error_gradual", seed)),
      "0/1 errors, rate +0.1 per segment over 2,000 values", up, true, gradual + 1000);
  add(bernoulli_stream("error_none", {0.2}, stationary, 0, name_seed("error_none", seed)),
      "0/1 errors, rate 0.2, no drift", up, true, 1000);
  add(bernoulli_stream("error_low_none", {0.01}, stationary, 0, name_seed("error_low_none", seed)),
      "0/1 errors, rate 0.01, no drift", up, true, 1000);
  return out;
}

// ---- Real data --------------------------------------------------------------------------------

namespace {

struct RealSet {
  const char* name;
  const char* data;
  const char* labels;
  std::vector<size_t> drop;  // feature columns to ignore
  const char* description;
};

const std::vector<RealSet>& real_sets() {
  static const std::vector<RealSet> sets = {
      {"sea",
       "sea/SEA_training_data.csv.gz",
       "sea/SEA_training_class.csv",
       {},
       "SEA concepts (synthetic), abrupt drift every 12,500 rows, 10% label noise"},
      {"elec2",
       "elec2/elec2_data.dat.gz",
       "elec2/elec2_label.dat",
       {0, 3},
       "NSW electricity prices up/down (real); date and nswprice dropped"},
      {"weather",
       "weather/NEweather_data.csv.gz",
       "weather/NEweather_class.csv",
       {},
       "rain / no rain, Offutt AFB 1949-1999 (real)"},
      {"outdoor",
       "outdoor/outdoorStream.data.gz",
       "outdoor/outdoorStream.labels",
       {},
       "outdoor objects under changing light, 40 classes (real)"},
      {"moving_squares",
       "moving_squares/movingSquares.data.gz",
       "moving_squares/movingSquares.labels.gz",
       {},
       "moving squares, incremental drift"},
      {"interchanging_rbf",
       "interchanging_rbf/interchangingRBF.data.gz",
       "interchanging_rbf/interchangingRBF.labels.gz",
       {},
       "interchanging RBF, abrupt drifts"},
      {"transient_chessboard",
       "transient_chessboard/transientChessboard.data.gz",
       "transient_chessboard/transientChessboard.labels.gz",
       {},
       "transient chessboard, virtual / recurring drift"},
  };
  return sets;
}

// The numbers of one line, separated by commas and/or blanks.
void parse_fields(const std::string& line, const std::filesystem::path& path, size_t line_no,
                  std::vector<double>& out) {
  out.clear();
  const char* p = line.data();
  const char* end = p + line.size();
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r')) ++p;
    if (p == end) break;
    double v = 0;
    auto [ptr, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() ||
        (ptr < end && *ptr != ' ' && *ptr != '\t' && *ptr != ',' && *ptr != '\r')) {
      const char* q = p;
      while (q < end && *q != ',' && *q != ' ') ++q;
      throw DataError(path.string() + ":" + std::to_string(line_no) +
                      ": not a number: " + std::string(p, q - p));
    }
    out.push_back(v);
    p = ptr;
  }
}

}  // namespace

std::vector<std::string> real_dataset_names() {
  std::vector<std::string> names;
  for (const auto& s : real_sets()) names.push_back(s.name);
  return names;
}

NearestClassMean::NearestClassMean(size_t features, double forgetting)
    : d_(features),
      forgetting_(forgetting),
      mean_(features, 0.0),
      m2_(features, 0.0),
      z_(features) {}

void NearestClassMean::standardise(const std::vector<double>& x, std::vector<double>& z) const {
  for (size_t j = 0; j < d_; ++j) {
    double sd = seen_ > 1 ? std::sqrt(m2_[j] / static_cast<double>(seen_ - 1)) : 1.0;
    if (!(sd > 1e-12)) sd = 1.0;
    z[j] = (x[j] - mean_[j]) / sd;
  }
}

bool NearestClassMean::predict_then_learn(const std::vector<double>& x, int label) {
  TENSAIR_ASSERT(x.size() == d_, "NearestClassMean: wrong feature count");
  standardise(x, z_);
  int predicted = -1;
  double best = 0;
  for (size_t c = 0; c < labels_.size(); ++c) {
    double dist = 0;
    for (size_t j = 0; j < d_; ++j) {
      const double e = z_[j] - centres_[c][j];
      dist += e * e;
    }
    if (predicted < 0 || dist < best) best = dist, predicted = labels_[c];
  }
  const bool wrong = predicted != label;
  // Learn: the class centre (in the standardisation before this value), then the feature stats.
  size_t c = std::find(labels_.begin(), labels_.end(), label) - labels_.begin();
  if (c == labels_.size()) {
    labels_.push_back(label);
    counts_.push_back(0);
    centres_.emplace_back(d_, 0.0);
  }
  ++counts_[c];
  const double rate = std::max(forgetting_, 1.0 / static_cast<double>(counts_[c]));
  for (size_t j = 0; j < d_; ++j) centres_[c][j] += rate * (z_[j] - centres_[c][j]);
  ++seen_;
  for (size_t j = 0; j < d_; ++j) {
    const double delta = x[j] - mean_[j];
    mean_[j] += delta / static_cast<double>(seen_);
    m2_[j] += delta * (x[j] - mean_[j]);
  }
  return wrong;
}

LabelledStream real_stream(const std::string& dataset, const std::filesystem::path& dir_arg,
                           size_t limit) {
  const RealSet* set = nullptr;
  for (const auto& s : real_sets()) {
    if (dataset == s.name) set = &s;
  }
  if (!set) {
    std::string known;
    for (const auto& s : real_sets()) known += (known.empty() ? "" : ", ") + std::string(s.name);
    throw ConfigError("unknown drift data set \"" + dataset + "\" (known: " + known + ")");
  }
  const std::filesystem::path dir = dir_arg.empty() ? data_dir() / "drift" : dir_arg;
  const std::filesystem::path data_path = dir / set->data, label_path = dir / set->labels;
  for (const auto& p : {data_path, label_path}) {
    if (!std::filesystem::exists(p)) {
      throw IoError("drift data file " + p.string() + " does not exist", ExitCode::kConfig);
    }
  }
  FileReader data(data_path), labels(label_path);
  LabelledStream s;
  s.name = set->name;
  s.description = std::string("NCM prequential errors: ") + set->description;
  s.input = Input::kError;
  s.direction = Direction::kIncrease;
  s.labelled = false;
  if (s.name == "sea") {
    // The classifier's error falls at 12,500 and 37,500 (the new thresholds suit it better)
    // and rises at 25,000, so the known concept changes are watched in both directions.
    s.labelled = true;
    s.drifts = {12500, 25000, 37500};
    s.max_delay = 2500;
    s.direction = Direction::kBoth;
  }
  std::string line, label_line;
  std::vector<double> fields, x, label_fields;
  std::unique_ptr<NearestClassMean> model;
  size_t row = 0;
  while (data.read_line(line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++row;
    if (!labels.read_line(label_line)) {
      throw DataError(label_path.string() + ": fewer labels than data rows (" +
                      std::to_string(row - 1) + ")");
    }
    parse_fields(line, data_path, row, fields);
    parse_fields(label_line, label_path, row, label_fields);
    if (label_fields.size() != 1) {
      throw DataError(label_path.string() + ":" + std::to_string(row) + ": expected one label");
    }
    x.clear();
    for (size_t j = 0; j < fields.size(); ++j) {
      if (std::find(set->drop.begin(), set->drop.end(), j) == set->drop.end())
        x.push_back(fields[j]);
    }
    if (!model) model = std::make_unique<NearestClassMean>(x.size());
    if (x.size() != model->features()) {
      throw DataError(data_path.string() + ":" + std::to_string(row) + ": " +
                      std::to_string(fields.size()) +
                      " fields, the first row had a different count");
    }
    s.values.push_back(
        model->predict_then_learn(x, static_cast<int>(std::lround(label_fields[0]))) ? 1.0 : 0.0);
    if (limit && row >= limit) break;
  }
  while (!s.drifts.empty() && s.drifts.back() >= s.values.size()) s.drifts.pop_back();
  return s;
}

std::vector<LabelledStream> real_streams(bool quick, const std::filesystem::path& dir) {
  std::vector<LabelledStream> out;
  for (const auto& name : real_dataset_names()) {
    if (quick && name != "sea" && name != "elec2" && name != "weather") continue;
    out.push_back(real_stream(name, dir));
  }
  return out;
}

}  // namespace tensair::drift
