// Versioned, atomic TorchScript snapshots (snapshot_writer.hpp).
#include "model/snapshot_writer.hpp"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "tensair/common/error.hpp"
#include "tensair/dataflow/checkpoint.hpp"

namespace tensair::model {

namespace fs = std::filesystem;

SnapshotWriter::SnapshotWriter(fs::path dir, std::string name, int64_t keep)
    : dir_(std::move(dir)), name_(std::move(name)), keep_(keep) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw IoError("cannot create the snapshot folder " + dir_.string() + ": " + ec.message());
  thread_ = std::thread([this] { run(); });
}

SnapshotWriter::~SnapshotWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SnapshotWriter::submit(std::shared_ptr<const PublishedModel> m) {
  {
    std::lock_guard lock(mu_);
    if (waiting_) ++skipped_;
    waiting_ = std::move(m);
  }
  cv_.notify_all();
}

std::vector<WrittenSnapshot> SnapshotWriter::take_written() {
  std::lock_guard lock(mu_);
  std::vector<WrittenSnapshot> out;
  out.swap(written_);
  return out;
}

void SnapshotWriter::flush() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !waiting_ && !busy_; });
}

int64_t SnapshotWriter::skipped() const {
  std::lock_guard lock(mu_);
  return skipped_;
}

void SnapshotWriter::run() {
  for (;;) {
    std::shared_ptr<const PublishedModel> m;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || waiting_; });
      if (!waiting_) return;  // stopping, nothing left
      m = std::move(waiting_);
      waiting_.reset();
      busy_ = true;
    }
    WrittenSnapshot w = write(*m);
    if (w.error.empty() && keep_ > 0) prune();
    {
      std::lock_guard lock(mu_);
      written_.push_back(std::move(w));
      busy_ = false;
    }
    cv_.notify_all();
  }
}

WrittenSnapshot SnapshotWriter::write(const PublishedModel& m) {
  const auto start = std::chrono::steady_clock::now();
  WrittenSnapshot w;
  w.version = m.version;
  const std::string file = name_ + "_v" + std::to_string(m.version) + ".pt";
  w.path = dir_ / file;
  try {
    // The same TorchScript serialisation as `export` (Network::save), into memory, then one
    // durable write: temp file, fsync, rename, fsync of the folder.
    std::ostringstream bytes;
    m.module.save(bytes);
    const std::string data = bytes.str();
    dataflow::write_file_durably(w.path, data);
    dataflow::write_file_durably(dir_ / "latest", file + "\n");
    w.bytes = static_cast<int64_t>(data.size());
  } catch (const std::exception& e) {
    std::string why = e.what();
    w.error = "snapshot " + w.path.string() + ": " + why.substr(0, why.find('\n'));
  }
  w.write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return w;
}

void SnapshotWriter::prune() {
  std::vector<std::pair<int64_t, fs::path>> files;
  std::error_code ec;
  const std::string prefix = name_ + "_v";
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string f = e.path().filename().string();
    if (!f.starts_with(prefix) || !f.ends_with(".pt")) continue;
    const std::string digits = f.substr(prefix.size(), f.size() - prefix.size() - 3);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    files.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a > b; });
  for (size_t i = static_cast<size_t>(keep_); i < files.size(); ++i)
    fs::remove(files[i].second, ec);
}

}  // namespace tensair::model
