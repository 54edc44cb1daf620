// metrics.jsonl, dead_letters.jsonl and the progress line. Rank 0 writes both files; the other
// ranks ship their lines to it in kLog frames. See docs/metrics.md.
#include <chrono>
#include <cstdio>

#include "dataflow/executor_impl.hpp"
#include "tensair/common/process.hpp"

namespace tensair::dataflow::detail {

namespace fs = std::filesystem;

namespace {
// A run killed mid-line leaves a cut last line: what a later run appends starts on a line of
// its own (tensair report notes and skips the cut one).
void end_cut_line(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in || in.tellg() <= 0) return;
  in.seekg(-1, std::ios::end);
  char last = '\n';
  in.get(last);
  if (last != '\n') std::ofstream(path, std::ios::app | std::ios::binary) << '\n';
}
}  // namespace

// Rank 0 opens the metrics file: a fresh one, or (resuming) the same one continued, so a job's
// whole history across restarts is one file.
void Impl::open_metrics() {
  if (opt.out_dir.empty() || rank != 0) return;
  std::error_code ec;
  fs::create_directories(opt.out_dir, ec);
  const bool resume = resumed_from != 0;
  if (resume) end_cut_line(opt.out_dir / "metrics.jsonl");
  metrics_file.open(opt.out_dir / "metrics.jsonl", resume ? std::ios::app : std::ios::trunc);
  if (!metrics_file) {
    throw IoError("cannot write " + (opt.out_dir / "metrics.jsonl").string(), ExitCode::kConfig);
  }
  if (!resume) fs::remove(opt.out_dir / "dead_letters.jsonl", ec);
  json start = {{"t", 0.0},         {"type", "job"},
                {"event", "start"}, {"job", opt.job_name},
                {"ranks", world},   {"operators", graph.operators().size()}};
  if (resume) start["resumed_from"] = resumed_from;
  start["allocator"] = allocator_description();
  // The wall clock at t = 0, so the lines can be set beside other programs' logs.
  start["unix_time"] =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() -
      elapsed();
  metrics_file << start.dump() << "\n";
  metrics_file.flush();
}

void Impl::job_event(json event) {
  event["t"] = elapsed();
  event["type"] = "job";
  add_log_line(LogStream::kMetrics, event.dump());
}

void Impl::add_log_line(LogStream stream, std::string line) {
  std::lock_guard lock(mu);
  std::string& buf = stream == LogStream::kMetrics ? log_metrics : log_dead;
  buf += line;
  buf += '\n';
  if (buf.size() > (1 << 20)) main_cv.notify_all();
}

void Impl::write_log(LogStream stream, const std::string& text) {
  std::ofstream& file = stream == LogStream::kMetrics ? metrics_file : dead_file;
  if (stream == LogStream::kDeadLetters && !dead_file.is_open() && !opt.out_dir.empty()) {
    end_cut_line(opt.out_dir / "dead_letters.jsonl");
    dead_file.open(opt.out_dir / "dead_letters.jsonl", std::ios::app);
  }
  if (!file.is_open()) return;
  file << text;
  if (stream == LogStream::kMetrics) {
    // Keep the latest counters of other ranks' instances for the progress line.
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + pos, end - pos);
      if (line.find("\"event\":\"kafka_lag\"") != std::string_view::npos) {
        json j = json::parse(line, nullptr, false);
        if (!j.is_discarded()) {
          const std::string op = j.value("operator", "");
          source_lag[op + "#" + std::to_string(j.value("instance", 0))] = {op, j.value("total", int64_t{0})};
        }
      }
      if (line.find("\"type\":\"operator\"") != std::string_view::npos) {
        json j = json::parse(line, nullptr, false);
        if (!j.is_discarded()) {
          remote_snapshots[j.value("operator", "") + "#" + std::to_string(j.value("instance", 0))] =
              j;
        }
      }
      pos = end + 1;
    }
  }
}

void Impl::flush_logs(bool final) {
  std::string metrics, dead;
  std::vector<std::pair<LogStream, std::string>> received;
  {
    std::lock_guard lock(mu);
    metrics.swap(log_metrics);
    dead.swap(log_dead);
    received.swap(received_logs);
  }
  if (rank == 0) {
    for (auto& [stream, text] : received) write_log(stream, text);
    if (!metrics.empty()) write_log(LogStream::kMetrics, metrics);
    if (!dead.empty()) write_log(LogStream::kDeadLetters, dead);
    if (final || !metrics.empty()) metrics_file.flush();
    if (dead_file.is_open()) dead_file.flush();
    return;
  }
  if (opt.out_dir.empty() || shutting_down.load() || tp_abandoned) return;
  if (!metrics.empty()) control(0, FrameKind::kLog, 0, 0, text_bytes(metrics), 0);
  if (!dead.empty()) control(0, FrameKind::kLog, 0, 0, text_bytes(dead), 1);
}

json Impl::instance_metrics(const Instance& in, bool final) const {
  InstanceStats s = in.stats();
  json by_port = json::object();
  const auto& node = graph.operators()[static_cast<size_t>(in.op)];
  for (size_t p = 0; p < s.queued_bytes_peak_by_port.size(); ++p) {
    by_port[node.inputs[p].name] = s.queued_bytes_peak_by_port[p];
  }
  return json{{"t", elapsed()},
              {"type", "operator"},
              {"rank", rank},
              {"operator", s.name},
              {"op_type", node.def->type()},
              {"instance", s.instance},
              {"source", node.inputs.empty()},
              {"records_in", s.records_in},
              {"records_out", s.records_out},
              {"bytes_in", s.bytes_in},
              {"bytes_out", s.bytes_out},
              {"batches_in", s.batches_in},
              {"batches_out", s.batches_out},
              {"queue_depth", in.inbox->depth()},
              {"queued_bytes", in.queued_bytes()},
              {"queued_bytes_peak", s.queued_bytes_peak},
              {"queued_bytes_peak_by_port", by_port},
              {"credit_waits", s.credit_waits},
              {"credit_wait_s", s.credit_wait_s},
              {"offers_refused", in.c.offers_refused.load()},
              {"dead_letters", s.dead_letters},
              {"busy_s", s.busy_s},
              {"final", final}};
}

void Impl::snapshot_metrics(bool final) {
  for (const auto& in : local)
    add_log_line(LogStream::kMetrics, instance_metrics(*in, final).dump());
  runtime::TransportStats ts = tp.stats();
  add_log_line(LogStream::kMetrics, json{{"t", elapsed()},
                                         {"type", "transport"},
                                         {"rank", rank},
                                         {"frames_sent", ts.frames_sent},
                                         {"frames_received", ts.frames_received},
                                         {"bytes_sent", ts.bytes_sent},
                                         {"bytes_received", ts.bytes_received},
                                         {"final", final}}
                                        .dump());
}

// The last line of metrics.jsonl. Rank 0 writes it; when rank 0 is the rank that was lost, the
// lowest surviving rank appends it to the same file (when it can see it: a shared folder).
void Impl::write_end_line(const char* status) {
  json end = {{"t", elapsed()},
              {"type", "job"},
              {"event", "end"},
              {"status", status},
              {"elapsed_s", elapsed()}};
  {
    std::lock_guard lock(mu);
    if (error_message) end["error"] = *error_message;
    if (!lost_ranks.empty()) end["lost_ranks"] = lost_ranks;
  }
  if (stop_signal_seen.load()) end["signal"] = stop_signal_seen.load();
  if (resumed_from) end["resumed_from"] = resumed_from;
  {
    std::lock_guard lock(mu);
    if (last_complete) end["last_checkpoint"] = last_complete;
  }
  if (rank == 0) {
    if (!metrics_file.is_open()) return;
    metrics_file << end.dump() << "\n";
    metrics_file.flush();
    return;
  }
  std::vector<int> lost;
  {
    std::lock_guard lock(mu);
    lost = lost_ranks;
  }
  if (std::find(lost.begin(), lost.end(), 0) == lost.end() || opt.out_dir.empty()) return;
  for (int r = 0; r < rank; ++r) {
    if (std::find(lost.begin(), lost.end(), r) == lost.end()) return;  // a lower rank survives
  }
  std::error_code ec;
  if (!fs::exists(opt.out_dir / "metrics.jsonl", ec)) return;
  end_cut_line(opt.out_dir / "metrics.jsonl");
  std::ofstream f(opt.out_dir / "metrics.jsonl", std::ios::app);
  f << end.dump() << "\n";
}

namespace {
std::string human(double v) {
  char buf[32];
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}
std::string human_bytes(double v) {
  char buf[32];
  if (v >= 1 << 30)
    std::snprintf(buf, sizeof buf, "%.1f GiB", v / (1 << 30));
  else if (v >= 1 << 20)
    std::snprintf(buf, sizeof buf, "%.1f MiB", v / (1 << 20));
  else if (v >= 1 << 10)
    std::snprintf(buf, sizeof buf, "%.1f KiB", v / (1 << 10));
  else
    std::snprintf(buf, sizeof buf, "%.0f B", v);
  return buf;
}
}  // namespace

void Impl::progress_line(bool final) {
  if (!opt.progress || rank != 0) return;
  // Latest counters: this rank live, other ranks from their last metrics lines.
  std::map<std::string, json> view = remote_snapshots;
  for (const auto& in : local) {
    json j = instance_metrics(*in, false);
    view[in->name() + "#" + std::to_string(in->info().instance)] = j;
  }
  std::map<std::string, uint64_t> source_records;
  double in_flight = 0;
  for (const auto& [key, j] : view) {
    if (j.value("source", false))
      source_records[j.value("operator", "")] += j.value("records_out", uint64_t{0});
    in_flight += j.value("queued_bytes", 0.0);
  }
  double t = elapsed();
  char head[32];
  std::snprintf(head, sizeof head, "[%7.1f s]", t);
  std::string line = head;
  for (const auto& [name, records] : source_records) {
    auto& prev = progress_prev[name];
    double dt = t - prev.first;
    double rate = dt > 0 ? static_cast<double>(records - std::min(records, prev.second)) / dt : 0;
    if (final) rate = t > 0 ? static_cast<double>(records) / t : 0;
    prev = {t, records};
    line += " " + name + ": " + human(static_cast<double>(records)) + " rec (" + human(rate) +
            " rec/s";
    int64_t lag = -1;
    for (const auto& [key, v] : source_lag) {
      if (v.first == name) lag = std::max<int64_t>(lag, 0) + v.second;
    }
    if (lag >= 0) line += ", lag " + human(static_cast<double>(lag));
    line += ")";
  }
  line += " | in flight " + human_bytes(in_flight);
  {
    std::lock_guard lock(mu);
    if (last_complete) line += " | ckpt " + std::to_string(last_complete);
  }
  std::fprintf(stderr, "\r%-100s%s", line.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace tensair::dataflow::detail
