// This rank's side of job-wide checkpoints (docs/fault-tolerance.md): delivering triggers,
// collecting every local instance's report, writing the rank file on the writer thread, and,
// on rank 0, completing checkpoints with their manifest. Also the start of a resumed job:
// agreeing with the other ranks on one checkpoint and loading this rank's file.
//
// The rank file's format is its own unit (dataflow/rank_file.hpp).
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "dataflow/executor_impl.hpp"
#include "dataflow/rank_file.hpp"
#include "tensair/common/log.hpp"

namespace tensair::dataflow::detail {

namespace fs = std::filesystem;

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

fs::path Impl::checkpoint_root() const {
  if (!opt.checkpoint.dir.empty()) return opt.checkpoint.dir;
  if (opt.out_dir.empty()) return {};
  return opt.out_dir / "checkpoints";
}

// Triggers and reports -------------------------------------------------------------------------

void Impl::on_trigger(uint64_t id, bool stop, int signal) {
  {
    std::lock_guard lock(ckpt_mu);
    if (id > rank_written) {
      newest_trigger = std::max(newest_trigger, id);
      RankCheckpoint& rc = rank_ckpts[id];
      rc.triggered = true;
      for (auto& in : local) {
        if (rc.reports.count(in->id)) continue;
        if (in->ckpt_finished) {
          rc.reports[in->id] = std::nullopt;
          in->forward_barriers_finished(id);
        } else {
          in->deliver_trigger(id);
        }
      }
      maybe_write_locked(id);
    }
  }
  // After the trigger is published, so a source that sees the stop has the trigger too.
  if (stop) stop_sources(signal);
}

void Impl::report(Instance& in, uint64_t id, std::optional<std::string> entry, std::vector<int> fds) {
  std::lock_guard lock(ckpt_mu);
  report_locked(in, id, std::move(entry), std::move(fds));
}

void Impl::report_locked(Instance& in, uint64_t id, std::optional<std::string> entry, std::vector<int> fds) {
  auto close_all = [&] {
    for (int fd : fds) ::close(fd);
  };
  if (id <= rank_written) return close_all();
  RankCheckpoint& rc = rank_ckpts[id];
  if (rc.reports.count(in.id)) return close_all();
  log().debug("{:.3f} s: checkpoint {}: {} reports {}", elapsed(), id, in.context(),
              entry ? "its snapshot" : "that it has finished");
  rc.fds.insert(rc.fds.end(), fds.begin(), fds.end());
  rc.reports[in.id] = std::move(entry);
  maybe_write_locked(id);
}

void Impl::report_finished_everywhere_locked(Instance& in) {
  std::vector<uint64_t> ids;
  for (auto& [id, rc] : rank_ckpts) {
    if (!rc.reports.count(in.id)) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    report_locked(in, id, std::nullopt);
    in.forward_barriers_finished(id);
  }
}

// Once every local instance has reported checkpoint `id`, its rank file goes to the writer.
void Impl::maybe_write_locked(uint64_t id) {
  auto it = rank_ckpts.find(id);
  if (it == rank_ckpts.end() || it->second.reports.size() < local.size()) return;
  std::vector<std::pair<int32_t, const std::string*>> entries;
  for (auto& [gid, entry] : it->second.reports) {
    entries.emplace_back(gid, entry ? &*entry : nullptr);
  }
  std::string data = encode_rank_file(rank, world, id, entries);
  std::vector<int> fds = std::move(it->second.fds);
  rank_ckpts.erase(it);
  rank_written = std::max(rank_written, id);
  const fs::path path = checkpoint_root() / checkpoint_folder_name(id) / rank_file_name(rank);
  enqueue_write([this, id, path, data = std::move(data), fds = std::move(fds)] {
    json report = {{"files", json::array()}, {"error", ""}};
    try {
      // The operators' own files first (sinks), so that what the checkpoint records of them is
      // on disk before the checkpoint can count as complete.
      std::string sync_error;
      for (int fd : fds) {
        if (::fsync(fd) != 0 && sync_error.empty()) sync_error = std::strerror(errno);
        ::close(fd);
      }
      if (!sync_error.empty()) throw IoError("cannot sync an operator's file: " + sync_error);
      write_file_durably(path, data);
      log().debug("{:.3f} s: checkpoint {}: wrote {} ({} bytes)", elapsed(), id, path.string(), data.size());
      report["files"].push_back({{"name", path.filename().string()},
                                 {"rank", rank},
                                 {"bytes", data.size()},
                                 {"crc32", checksum(data)}});
    } catch (const Error& e) {
      report["error"] = "rank " + std::to_string(rank) + ": " + e.what();
    }
    if (!cancelled.load()) control(0, FrameKind::kCkptRankDone, 0, id, text_bytes(report.dump()));
  });
}

void Impl::request_checkpoint() { control(0, FrameKind::kCkptRequest, 0, 0); }

// Rank 0: completing checkpoints ---------------------------------------------------------------

void Impl::on_rank_done(uint64_t id, int from, const json& report) {
  std::vector<CheckpointFileEntry> files;
  std::string error;
  try {
    for (const auto& f : report.at("files")) {
      files.push_back({f.at("name").get<std::string>(), f.at("rank").get<int>(),
                       f.at("bytes").get<uint64_t>(), f.at("crc32").get<uint32_t>()});
    }
    error = report.at("error").get<std::string>();
  } catch (const json::exception&) {
    throw TransportError("invalid checkpoint report from rank " + std::to_string(from));
  }
  std::lock_guard lock(mu);
  if (coordinator) coordinator->rank_done(id, from, std::move(files), error);
  main_cv.notify_all();
}

void Impl::write_manifest(const CheckpointCoordinator::InFlight& f) {
  CheckpointManifest m;
  m.job = opt.job_name;
  m.id = f.trigger.id;
  m.ranks = world;
  m.reason = f.trigger.reason;
  m.created = unix_now();
  m.duration_s = std::chrono::duration<double>(Clock::now() - f.started).count();
  const auto& ops = graph.operators();
  for (size_t op = 0; op < ops.size(); ++op) {
    m.operators.push_back(
        {ops[op].name, ops[op].def->type(), static_cast<int>(op_ranks[op].size())});
  }
  m.files = f.files;
  std::sort(m.files.begin(), m.files.end(),
            [](const auto& a, const auto& b) { return a.rank < b.rank; });
  write_file_durably(checkpoint_root() / checkpoint_folder_name(m.id) / kManifestName,
                     m.to_json().dump(2) + "\n");
}

// Main thread, rank 0: completes the checkpoint whose ranks have all answered, then starts the
// next one when it is due.
void Impl::checkpoint_tick() {
  if (!coordinator) return;
  std::optional<CheckpointCoordinator::InFlight> settle;
  {
    std::lock_guard lock(mu);
    if (coordinator->in_flight() && coordinator->current().reports == world)
      settle = coordinator->current();
  }
  if (settle) {
    std::string error = settle->error;
    uint64_t bytes = 0;
    for (const auto& file : settle->files) bytes += file.bytes;
    if (error.empty()) {
      log().debug("{:.3f} s: checkpoint {}: every rank answered; writing the manifest", elapsed(),
                  settle->trigger.id);
      try {
        write_manifest(*settle);
      } catch (const Error& e) {
        error = e.what();
      }
    }
    const uint64_t id = settle->trigger.id;
    const double duration = std::chrono::duration<double>(Clock::now() - settle->started).count();
    if (error.empty()) {
      job_event({{"event", "checkpoint"},
                 {"checkpoint", id},
                 {"reason", settle->trigger.reason},
                 {"duration_s", duration},
                 {"bytes", bytes}});
      live_metrics.checkpoint_completed(id, duration, bytes);
      json manifest = read_manifest(checkpoint_root() / checkpoint_folder_name(id)).to_json();
      for (int r = 0; r < world; ++r)
        control(r, FrameKind::kCkptComplete, 0, id, text_bytes(manifest.dump()));
    } else {
      log().warn("checkpoint {} failed: {}", checkpoint_folder_name(id), error);
      job_event({{"event", "checkpoint_failed"}, {"checkpoint", id}, {"error", error}});
    }
    std::lock_guard lock(mu);
    coordinator->settled(Clock::now());
  }
  std::optional<CheckpointCoordinator::Trigger> trigger;
  {
    std::lock_guard lock(mu);
    if (ranks_finished == world) coordinator->close();
    trigger = coordinator->due(Clock::now());
  }
  if (trigger) {
    log().debug("{:.3f} s: checkpoint {} starts ({})", elapsed(), trigger->id, trigger->reason);
    const auto signal = static_cast<uint32_t>(trigger->stop ? stop_signal_seen.load() : 0);
    for (int r = 0; r < world; ++r) {
      control(r, FrameKind::kCkptTrigger, signal, trigger->id, {}, trigger->stop ? 1 : 0);
    }
  }
}

// Every rank: checkpoint `id` is complete. Its manifest is copied next to this rank's file when
// the folders are not shared (so a restore finds it here too), old checkpoints are pruned, and
// the live instances are told.
void Impl::on_checkpoint_complete(uint64_t id, const json& manifest) {
  enqueue_write([this, id, text = manifest.dump(2) + "\n"] {
    const fs::path folder = checkpoint_root() / checkpoint_folder_name(id);
    std::error_code ec;
    if (rank != 0 && !fs::exists(folder / kManifestName, ec)) {
      try {
        write_file_durably(folder / kManifestName, text);
      } catch (const Error& e) {
        log().warn("checkpoint {}: {}", checkpoint_folder_name(id), e.what());
      }
    }
    prune_checkpoints(checkpoint_root(), opt.checkpoint.keep);
  });
  {
    std::lock_guard lock(mu);
    last_complete = std::max(last_complete, id);
  }
  std::lock_guard lock(ckpt_mu);
  for (auto& in : local) {
    if (!in->ckpt_finished) in->deliver_completion(id);
  }
}

// The writer thread ----------------------------------------------------------------------------

void Impl::start_writer() {
  writer = std::thread([this] {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(writer_mu);
        writer_cv.wait(lock, [this] { return writer_stop || !writer_jobs.empty(); });
        if (writer_jobs.empty()) return;
        job = std::move(writer_jobs.front());
        writer_jobs.pop_front();
        writer_busy = true;
      }
      job();
      {
        std::lock_guard lock(writer_mu);
        writer_busy = false;
      }
      std::lock_guard lock(mu);
      main_cv.notify_all();
    }
  });
}

void Impl::enqueue_write(std::function<void()> job) {
  {
    std::lock_guard lock(writer_mu);
    writer_jobs.push_back(std::move(job));
  }
  writer_cv.notify_one();
}

bool Impl::writer_idle() {
  std::lock_guard lock(writer_mu);
  return writer_jobs.empty() && !writer_busy;
}

void Impl::stop_writer() {
  if (!writer.joinable()) return;
  {
    std::lock_guard lock(writer_mu);
    writer_stop = true;
  }
  writer_cv.notify_all();
  writer.join();
}

// Resume ----------------------------------------------------------------------------------------

namespace {

// Why the checkpoint in `folder` cannot be used by this rank of this job ("" when it can).
std::string unusable_reason(const fs::path& folder, const Impl& impl) {
  CheckpointManifest m;
  try {
    m = read_manifest(folder);
  } catch (const Error& e) {
    return e.what();
  }
  if (m.job != impl.opt.job_name)
    return "it belongs to job \"" + m.job + "\", not \"" + impl.opt.job_name + "\"";
  if (m.ranks != impl.world) {
    return "it was taken on " + std::to_string(m.ranks) + (m.ranks == 1 ? " rank" : " ranks") +
           " and this run has " + std::to_string(impl.world) + " (resume on " +
           std::to_string(m.ranks) + ", or start without --resume)";
  }
  const auto& ops = impl.graph.operators();
  if (m.operators.size() != ops.size()) {
    return "it has " + std::to_string(m.operators.size()) + " operators and the job " +
           std::to_string(ops.size());
  }
  for (size_t op = 0; op < ops.size(); ++op) {
    const auto& o = m.operators[op];
    const int instances = static_cast<int>(impl.op_ranks[op].size());
    if (o.name != ops[op].name || o.type != ops[op].def->type() || o.instances != instances) {
      return "its operator " + std::to_string(op + 1) + " is \"" + o.name + "\" (" + o.type + ", " +
             std::to_string(o.instances) + " instances), the job's is \"" + ops[op].name + "\" (" +
             ops[op].def->type() + ", " + std::to_string(instances) + " instances)";
    }
  }
  for (const auto& f : m.files) {
    if (f.rank != impl.rank) continue;
    std::string why = verify_checkpoint_file(folder, f);
    return why;
  }
  return "it has no file for rank " + std::to_string(impl.rank);
}

}  // namespace

void Impl::agree_on_resume() {
  if (opt.resume.empty()) return;
  const fs::path root = checkpoint_root();
  std::vector<std::pair<uint64_t, fs::path>> candidates;
  json offer = {
      {"usable", json::array()}, {"rejected", json::object()}, {"explicit", false}, {"where", ""}};
  std::error_code ec;
  if (opt.resume == "latest") {
    if (root.empty())
      throw ConfigError("--resume latest needs an output folder or [checkpoint] dir");
    candidates = list_checkpoints(root);
    offer["where"] = root.string();
  } else {
    const fs::path p = opt.resume;
    if (fs::exists(p / kManifestName, ec)) {
      auto id = parse_checkpoint_folder_name(p.filename().string());
      if (!id) {
        try {
          id = read_manifest(p).id;
        } catch (const Error&) {
          id = 0;
        }
      }
      candidates.emplace_back(*id, p);
      offer["explicit"] = true;
    } else {
      candidates = list_checkpoints(p);
    }
    offer["where"] = p.string();
  }
  std::map<uint64_t, fs::path> paths;
  for (const auto& [id, path] : candidates) {
    paths[id] = path;
    std::string why = unusable_reason(path, *this);
    if (why.empty()) {
      offer["usable"].push_back(id);
    } else {
      offer["rejected"][std::to_string(id)] = why;
    }
  }
  control(0, FrameKind::kRestoreOffer, 0, 0, text_bytes(offer.dump()));
  std::pair<uint64_t, json> decision;
  {
    std::unique_lock lock(mu);
    main_cv.wait(lock, [this] { return restore_decision.has_value() || cancelled.load(); });
    if (!restore_decision) return;  // the job failed meanwhile
    decision = *restore_decision;
  }
  const json& d = decision.second;
  if (decision.first == 0) {
    // Every rank got the same decision; rank 0 reports it.
    Error::raise(ErrorKind::kConfig, d.value("error", std::string("no checkpoint to resume from")),
                 ExitCode::kConfig, rank == 0 ? -1 : 0);
  }
  if (rank == 0) {
    for (const auto& w : d.value("warnings", json::array())) log().warn("{}", w.get<std::string>());
  }
  resumed_from = decision.first;
  restored_folder = paths.at(decision.first);
}

void Impl::instance_restored() {
  if (--restoring != 0) return;
  job_event({{"event", "restored"},
             {"checkpoint", resumed_from},
             {"rank", rank},
             {"restore_s", elapsed()}});
}

// Rank 0: every rank's offer is in; the newest checkpoint usable on every rank wins.
void Impl::on_restore_offer(int from, const json& offer) {
  std::vector<json> offers;
  {
    std::lock_guard lock(mu);
    restore_offers[static_cast<size_t>(from)] = offer;
    for (const auto& o : restore_offers) {
      if (!o) return;
      offers.push_back(*o);
    }
  }
  std::map<uint64_t, std::vector<std::string>>
      problems;  // id -> reasons (empty: usable everywhere)
  std::map<uint64_t, int> usable_on;
  for (size_t r = 0; r < offers.size(); ++r) {
    for (const auto& id : offers[r].at("usable")) usable_on[id.get<uint64_t>()]++;
    for (const auto& [id, why] : offers[r].at("rejected").items()) {
      problems[std::stoull(id)].push_back(
          (offers.size() > 1 ? "rank " + std::to_string(r) + ": " : std::string()) +
          why.get<std::string>());
    }
  }
  for (const auto& [id, n] : usable_on) {
    if (n < world) problems[id];
  }
  std::set<uint64_t, std::greater<>> ids;
  for (const auto& [id, n] : usable_on) ids.insert(id);
  for (const auto& [id, why] : problems) ids.insert(id);
  uint64_t chosen = 0;
  json warnings = json::array();
  std::vector<std::string> skipped;
  for (uint64_t id : ids) {
    if (usable_on[id] == world) {
      chosen = id;
      break;
    }
    std::string why;
    for (const auto& p : problems[id]) why += (why.empty() ? "" : "; ") + p;
    if (why.empty()) why = "not usable on every rank";
    skipped.push_back(checkpoint_folder_name(id) + ": " + why);
  }
  const bool explicit_dir = offers[0].value("explicit", false);
  const std::string where = offers[0].value("where", std::string());
  json decision = json::object();
  if (chosen) {
    for (const auto& s : skipped) {
      warnings.push_back("checkpoint " + s + "; resuming from " + checkpoint_folder_name(chosen) +
                         " instead");
    }
    decision["warnings"] = warnings;
  } else if (explicit_dir && !skipped.empty()) {
    decision["error"] = "checkpoint " + where + " cannot be used: " +
                        skipped.front().substr(skipped.front().find(": ") + 2);
  } else if (ids.empty()) {
    decision["error"] = "no checkpoint to resume from in " + where + " (none has completed there)";
  } else {
    std::string all;
    for (const auto& s : skipped) all += (all.empty() ? "" : "; ") + s;
    decision["error"] = "no usable checkpoint in " + where + ": " + all;
  }
  for (int r = 0; r < world; ++r)
    control(r, FrameKind::kRestoreDecision, 0, chosen, text_bytes(decision.dump()));
}

void Impl::load_rank_file(uint64_t id) {
  const fs::path path = restored_folder / rank_file_name(rank);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read " + path.string());
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string what = "checkpoint " + path.string();
  for (const RankFileEntry& e : parse_rank_file(data, what, rank, world, id)) {
    const int gid = e.instance;
    if (gid < 0 || static_cast<size_t>(gid) >= local_by_global.size() ||
        !local_by_global[static_cast<size_t>(gid)]) {
      throw DataError(what + ": has state for instance " + std::to_string(gid) +
                      ", which does not run on this rank");
    }
    RestoredInstance ri;
    if (e.finished) {
      ri.finished = true;
    } else {
      ri = decode_instance_entry(
          e.state, what + ", " + local_by_global[static_cast<size_t>(gid)]->context());
    }
    restored[gid] = std::move(ri);
  }
  for (const auto& in : local) {
    if (!restored.count(in->id)) throw DataError(what + " has no state for " + in->context());
  }
}

}  // namespace tensair::dataflow::detail
