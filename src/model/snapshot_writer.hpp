// Versioned TorchScript snapshots of a model for external servers (TorchServe, Triton, Python
// torch.jit.load), written off the training thread (docs/serving.md).
//
// Files, in `dir`: <name>_v<version>.pt, each written whole to <file>.tmp, fsynced and renamed
// into place (so a reader never sees a partial file), then `latest` (one line: the newest
// file's name), replaced the same way. With keep > 0, older <name>_v*.pt beyond the newest
// `keep` are deleted after `latest` points past them.
//
// Threading: submit() and take_written() are called by the model thread; the files are
// written by the writer's own thread. A snapshot submitted while another waits replaces it
// (the waiting one is skipped, counted in skipped()); the one being written is finished.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/served_model.hpp"

namespace tensair::model {

struct WrittenSnapshot {
  std::filesystem::path path;
  int64_t version = 0;
  int64_t bytes = 0;
  double write_s = 0;  // serialise + write + fsync + rename
  std::string error;   // non-empty: the write failed (the job goes on)
};

class SnapshotWriter {
 public:
  SnapshotWriter(std::filesystem::path dir, std::string name, int64_t keep);
  ~SnapshotWriter();  // writes what is waiting, then joins

  void submit(std::shared_ptr<const PublishedModel> m);
  // Snapshots written (or failed) since the last call, oldest first.
  std::vector<WrittenSnapshot> take_written();
  // Blocks until nothing waits or is being written.
  void flush();
  int64_t skipped() const;

 private:
  void run();
  WrittenSnapshot write(const PublishedModel& m);
  void prune();

  const std::filesystem::path dir_;
  const std::string name_;
  const int64_t keep_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const PublishedModel> waiting_;  // guarded by mu_
  bool busy_ = false;                              // guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  int64_t skipped_ = 0;                            // guarded by mu_
  std::vector<WrittenSnapshot> written_;           // guarded by mu_
  std::thread thread_;
};

}  // namespace tensair::model
