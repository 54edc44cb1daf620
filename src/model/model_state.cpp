// The Model replica's checkpointed state (Operator::snapshot/restore), and its CSV file, which
// is exactly-once like a sink: the snapshot records its length (the file is synced by the
// engine before the checkpoint completes), a restore cuts it back to that length.
//
// Layout (format 1): parameter count, weights (a torch archive), optimizer state (a torch
// archive), the replication state, flags and counters, the epoch/convergence state, the held
// batch, the evaluation set, the CSV length.
//
// Devices: the weights are saved as host copies; both archives are loaded onto the replica's
// device (map location), so a checkpoint taken on one device restores on another.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "model/model_instance.hpp"
#include "model/training.hpp"
#include "tensair/common/error.hpp"

namespace tensair::model {

namespace {

constexpr uint32_t kModelStateFormat = 1;

template <class Fill>
std::string archive_bytes(Fill fill) {
  torch::serialize::OutputArchive archive;
  fill(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

template <class Read>
void read_archive(std::string_view bytes, at::Device device, Read read) {
  std::istringstream in{std::string(bytes)};
  torch::serialize::InputArchive archive;
  archive.load_from(in, device);
  read(archive);
}

std::string substitute_rank(std::string path, int rank) {
  for (size_t at; (at = path.find("{rank}")) != std::string::npos;)
    path.replace(at, 6, std::to_string(rank));
  return path;
}

}  // namespace

void ModelInstance::snapshot(dataflow::StateWriter& w, dataflow::Context& ctx) {
  ctx_ = &ctx;
  w.put<uint32_t>(kModelStateFormat);
  w.put<int64_t>(net_.parameter_count());
  try {
    const auto& params = net_.parameters();
    w.put_string(archive_bytes([&](torch::serialize::OutputArchive& a) {
      for (size_t i = 0; i < params.size(); ++i)
        a.write(net_.names()[i], params[i].detach().to(at::kCPU));  // itself on the CPU
    }));
    w.put_string(archive_bytes([&](torch::serialize::OutputArchive& a) { opt_->save(a); }));
  } catch (const c10::Error& e) {
    throw ModelError(std::string("cannot save the model's state: ") + e.what_without_backtrace());
  }
  replication_.snapshot(w);
  w.put<uint8_t>(training_ ? 1 : 0);
  w.put<uint8_t>(train_done_ ? 1 : 0);
  w.put<int64_t>(samples_);
  w.put<int64_t>(predictions_);
  w.put<int64_t>(nonfinite_);
  w.put<int64_t>(warmup_left_);
  w.put<double>(current_lr_);
  w.put<int64_t>(epoch_);
  w.put<int64_t>(epoch_count_);
  w.put<double>(epoch_loss_);
  w.put_vector(std::vector<double>(past_losses_.begin(), past_losses_.end()));
  w.put<int64_t>(metric_rows_);
  w.put_batch(held_);
  w.put<uint64_t>(eval_set_.size());
  for (const auto& b : eval_set_) w.put_batch(b);
  w.put<uint8_t>(csv_ ? 1 : 0);
  if (csv_) {
    if (std::fflush(csv_) != 0) throw IoError("error writing " + o_.csv_path.string());
    ctx.sync_at_checkpoint(fileno(csv_));
    w.put<uint64_t>(static_cast<uint64_t>(ftello(csv_)));
  }
}

void ModelInstance::restore(dataflow::StateReader& r, dataflow::Context& ctx) {
  ctx_ = &ctx;
  if (r.get<uint32_t>() != kModelStateFormat) r.fail("is a model state of another format version");
  const auto count = r.get<int64_t>();
  if (count != net_.parameter_count()) {
    r.fail("is of a network with " + std::to_string(count) + " parameters, this one (" +
           net_.description() + ") has " + std::to_string(net_.parameter_count()));
  }
  const std::string_view weights = r.get_bytes();
  const std::string_view optimizer = r.get_bytes();
  try {
    torch::NoGradGuard no_grad;
    const auto& params = net_.parameters();
    read_archive(weights, device_, [&](torch::serialize::InputArchive& a) {
      for (size_t i = 0; i < params.size(); ++i) {
        at::Tensor t;
        a.read(net_.names()[i], t);
        if (!t.sizes().equals(params[i].sizes())) {
          r.fail("has parameter " + net_.names()[i] + " of shape " + shape_string(t.sizes()) +
                 ", the network's is " + shape_string(params[i].sizes()));
        }
        params[i].copy_(t);
      }
    });
    read_archive(optimizer, device_, [&](torch::serialize::InputArchive& a) { opt_->load(a); });
  } catch (const c10::Error& e) {
    std::string why = e.what_without_backtrace();
    r.fail("holds damaged weights or optimizer state (" + why.substr(0, why.find('\n')) + ")");
  }
  replication_.restore(r);
  training_ = r.get<uint8_t>() != 0 && o_.training != Training::kNever;
  train_done_ = r.get<uint8_t>() != 0;
  samples_ = r.get<int64_t>();
  predictions_ = r.get<int64_t>();
  nonfinite_ = r.get<int64_t>();
  warmup_left_ = r.get<int64_t>();
  current_lr_ = r.get<double>();
  if (current_lr_ >= 0) {
    for (auto& group : opt_->param_groups()) group.options().set_lr(current_lr_);
  }
  epoch_ = r.get<int64_t>();
  epoch_count_ = r.get<int64_t>();
  epoch_loss_ = r.get<double>();
  std::vector<double> past = r.get_vector<double>();
  past_losses_.assign(past.begin(), past.end());
  metric_rows_ = r.get<int64_t>();
  held_ = r.get_batch();
  eval_set_.clear();
  for (uint64_t i = 0, n = r.get_count(); i < n; ++i) {
    dataflow::BatchPtr b = r.get_batch();
    if (!b) r.fail("holds an empty evaluation batch");
    eval_set_.push_back(std::move(b));
  }
  if (r.get<uint8_t>() != 0) csv_resume_at_ = r.get<uint64_t>();
  // The train port is paused while a held batch waits or a sync step is out, as it was.
  if (held_ || replication_.sync_waiting()) ctx.pause(kTrain);
}

void ModelInstance::open_csv() {
  const std::filesystem::path p = substitute_rank(o_.csv_path.string(), info_.rank);
  std::error_code ec;
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (!csv_resume_at_) {
    csv_ = std::fopen(p.c_str(), "wb");
    if (!csv_) throw IoError("cannot write " + p.string() + ": " + std::strerror(errno));
    return;
  }
  // Restored: the rows after the checkpoint are cut off; the resumed run writes them again.
  const uint64_t at = *csv_resume_at_;
  const auto size = std::filesystem::file_size(p, ec);
  if (ec || size < at) {
    throw IoError(p.string() + " is " +
                  (ec ? std::string("missing") : std::to_string(size) + " bytes long") +
                  ", but the checkpoint recorded " + std::to_string(at) + " bytes written to it");
  }
  csv_ = std::fopen(p.c_str(), "r+b");
  if (!csv_ || ::ftruncate(fileno(csv_), static_cast<off_t>(at)) != 0 ||
      std::fseek(csv_, 0, SEEK_END) != 0) {
    throw IoError("cannot continue " + p.string() + ": " + std::strerror(errno));
  }
}

void ModelInstance::csv_line(const std::string& line) {
  std::fputs(line.c_str(), csv_);
  std::fputc('\n', csv_);
}

}  // namespace tensair::model
