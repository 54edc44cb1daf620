#include "tensair/io/cifar10.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <cstring>
#include <memory>
#include <optional>

#include "common/hex.hpp"
#include "io/source_util.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/common/paths.hpp"

namespace tensair::io {

using dataflow::BatchBuilder;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;

namespace {

std::filesystem::path find_variant(const std::filesystem::path& base) {
  for (const char* ext : {"", ".gz", ".xz"}) {
    std::filesystem::path p = base;
    p += ext;
    std::error_code ec;
    if (std::filesystem::exists(p, ec)) return p;
  }
  std::filesystem::path p = base;
  p += ".gz";  // reported as missing by require_file
  return p;
}

struct CifarRecord {
  int64_t id = 0;
  std::array<uint8_t, kCifar10RecordBytes> bytes{};
  // Where it is in the input: the file and the record's number in it (checkpoints save this,
  // not the bytes), and, while a checkpoint is restored, the fingerprint of the saved bytes.
  uint32_t file = 0;
  int64_t record = 0;
  uint64_t saved_hash = 0;
};

// FNV-1a, continued over more bytes: the fingerprint of the cache, kept as it fills.
uint64_t fnv1a(uint64_t h, const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ULL;

// Reads the files one after the other as one stream of records. With caching, the first
// complete pass keeps every record's bytes (all instances' shares: which instance owns a
// position can change from pass to pass) and later passes replay them from memory.
//
// Checkpoints: the file, the record in it and the byte position; the concept announced last;
// with caching, the cache is not saved (up to 154 MB per instance per checkpoint) but rebuilt
// on restore by reading the first pass again up to where the saved one stood, and checked
// against the saved fingerprint (FNV-1a of the cached bytes and tails): input files that
// changed since the checkpoint are a DataError, not a silently different stream.
class CifarSource final : public detail::StagedSource<CifarRecord> {
 public:
  CifarSource(const Cifar10Options& o, Schema schema, const dataflow::InstanceInfo& info)
      : StagedSource(o.source, std::move(schema), info, o.shuffle_buffer, o.seed),
        opt_(o),
        caching_(o.cache && o.source.replay != 1) {
    for (int c = 0; c < 3; ++c) {
      for (int v = 0; v < 256; ++v) {
        float x = static_cast<float>(v) / 255.0f;
        lut_[c][v] = o.normalize ? (x - kCifar10Mean[static_cast<size_t>(c)]) / kCifar10Std[static_cast<size_t>(c)] : x;
      }
    }
  }

 protected:
  void start_pass(int64_t, Context&) override {
    if (cache_complete_) {
      slot_ = 0;
      return;
    }
    if (caching_) clear_cache();
    file_index_ = 0;
    open_file();
  }

  Read read(bool mine, int64_t index, CifarRecord& rec, Context& ctx) override {
    if (cache_complete_) return read_cached(mine, index, rec, ctx);
    switch (read_raw(rec)) {
      case Raw::kEnd:
        return Read::kEnd;
      case Raw::kTail:
        // A partial tail: one record's worth of index, reported by its owner only.
        if (mine) ctx.dead_letter(tail_reason_, tail_hex_);
        return Read::kSkipped;
      case Raw::kRecord:
        break;
    }
    if (!mine) return Read::kSkipped;
    return check(index, file_index_, record_in_file_ - 1, rec, ctx);
  }

  std::string_view state_name() const override { return "cifar10_source"; }
  // A staged record is saved as its id, its place (file, record number) and the FNV-1a of its
  // bytes: 28 bytes instead of 3,081, so that a shuffle buffer of 10,000 images costs 280 KB a
  // checkpoint, not 31 MB. complete_items() reads the bytes back and checks the fingerprint.
  void save_item(dataflow::StateWriter& state, const CifarRecord& rec) const override {
    state.put<int64_t>(rec.id);
    state.put<uint32_t>(rec.file);
    state.put<int64_t>(rec.record);
    state.put<uint64_t>(fnv1a(kFnvBasis, rec.bytes.data(), rec.bytes.size()));
  }
  void load_item(dataflow::StateReader& state, CifarRecord& rec) const override {
    rec.id = state.get<int64_t>();
    rec.file = state.get<uint32_t>();
    rec.record = state.get<int64_t>();
    rec.saved_hash = state.get<uint64_t>();
    if (rec.id < 0 || rec.file >= opt_.paths.size() || rec.record < 0)
      state.fail("holds a damaged staged CIFAR-10 record");
  }

  void complete_items(std::vector<CifarRecord>& items, dataflow::StateReader& state,
                      Context& ctx) override {
    std::vector<std::vector<CifarRecord*>> by_file(opt_.paths.size());
    for (CifarRecord& r : items) by_file[r.file].push_back(&r);
    auto differs = [&](const CifarRecord& r, const std::string& why) {
      state.fail("the input files differ from those the checkpoint read: staged record " +
                 std::to_string(r.record) + " of " + detail::file_name(opt_.paths[r.file]) + " " +
                 why);
    };
    for (size_t f = 0; f < by_file.size(); ++f) {
      auto& recs = by_file[f];
      if (recs.empty()) continue;
      std::sort(recs.begin(), recs.end(),
                [](const CifarRecord* a, const CifarRecord* b) { return a->record < b->record; });
      // Opened only for records the cache does not hold; for the file being read, file_ (at its
      // start, see load_input).
      std::unique_ptr<FileReader> own;
      std::unique_ptr<FileReader>& file = resume_at_ && f == file_index_ ? file_ : own;
      const CifarRecord* prev = nullptr;
      for (CifarRecord* r : recs) {
        if (ctx.cancelled()) throw Cancelled();
        // The same record staged twice, from two passes (a shuffle buffer may keep a record
        // for longer than a pass): sorted, they are neighbours, and the file is read once.
        if (prev != nullptr && prev->record == r->record) {
          r->bytes = prev->bytes;
        } else {
          fill(*r, f, file, differs);
        }
        prev = r;
        if (fnv1a(kFnvBasis, r->bytes.data(), r->bytes.size()) != r->saved_hash)
          differs(*r, "has other bytes");
      }
    }
    if (resume_at_) {
      file_->seek(*resume_at_);  // forward from the last staged record read, if any
      resume_at_.reset();
    }
  }

  // complete_items' read of one staged record: from the rebuilt cache when it holds the
  // record, else from the file (opened on first use; the records come in file order, so each
  // seek goes forward, which a compressed stream does without starting again).
  template <class Differs>
  void fill(CifarRecord& r, size_t f, std::unique_ptr<FileReader>& file,
            const Differs& differs) const {
    const size_t slot = f < files_.size() ? files_[f] + static_cast<size_t>(r.record) : 0;
    if (f < files_.size() && slot < slots_.size() && slots_[slot] >= 0 &&
        (f + 1 == files_.size() || slot < files_[f + 1])) {
      std::memcpy(r.bytes.data(), cache_bytes_.data() + slots_[slot] * kCifar10RecordBytes,
                  kCifar10RecordBytes);
      return;
    }
    if (!file) file = std::make_unique<FileReader>(opt_.paths[f]);
    try {
      file->seek(static_cast<uint64_t>(r.record) * kCifar10RecordBytes);
    } catch (const IoError&) {  // the data ends before the record
      differs(r, "is gone");
    }
    if (file->read_full(r.bytes.data(), r.bytes.size()) != r.bytes.size()) differs(r, "is gone");
  }

  void save_input(dataflow::StateWriter& state) const override {
    state.put<uint64_t>(file_index_);
    state.put<int64_t>(record_in_file_);
    ops::put_reader(state, file_.get());
    state.put<int64_t>(announced_concept_);
    ops::put_flag(state, caching_);
    ops::put_flag(state, cache_complete_);
    state.put<uint64_t>(slots_.size());
    state.put<uint64_t>(cache_hash_);
    state.put<uint64_t>(slot_);
  }

  void load_input(dataflow::StateReader& state, bool in_pass, Context& ctx) override {
    const auto file_index = state.get<uint64_t>();
    const auto record_in_file = state.get<int64_t>();
    const bool had_file = ops::get_flag(state);
    const auto position = state.get<uint64_t>();
    announced_concept_ = state.get<int64_t>();
    const bool caching = ops::get_flag(state);
    const bool complete = ops::get_flag(state);
    const auto positions = state.get<uint64_t>();
    const auto hash = state.get<uint64_t>();
    const auto slot = state.get<uint64_t>();
    if (caching != caching_) {
      state.fail(std::string("was saved ") + (caching ? "with" : "without") +
                 " the replay cache, this source runs " + (caching_ ? "with" : "without") + " it");
    }
    if (file_index > opt_.paths.size() ||
        (in_pass && had_file != (file_index < opt_.paths.size())) || record_in_file < 0 ||
        announced_concept_ < 0 ||
        announced_concept_ > static_cast<int64_t>(opt_.concept_changes.size())) {
      state.fail("holds an impossible CIFAR-10 position (file " + std::to_string(file_index) +
                 " of " + std::to_string(opt_.paths.size()) + ")");
    }
    if (caching_ && (complete || positions > 0)) {
      rebuild_cache(positions, complete, hash, state, ctx);
      if (slot > slots_.size())
        state.fail("holds cache slot " + std::to_string(slot) + " beyond the cache");
      slot_ = static_cast<size_t>(slot);
      const uint64_t now = file_ ? file_->position() : 0;
      if (!complete &&
          (file_index_ != file_index || now != position || record_in_file_ != record_in_file)) {
        state.fail(
            "the first pass read again does not end where the saved one stood (did the input files "
            "change?)");
      }
      return;
    }
    if (!in_pass) return;  // start_pass() opens the first file
    file_index_ = static_cast<size_t>(file_index);
    open_file();
    // The seek to `position` is complete_items' last step: it first reads the staged records
    // of this file with the same reader, so that a compressed file is decompressed once.
    if (file_) resume_at_ = position;
    record_in_file_ = record_in_file;
  }

  void append(CifarRecord& rec, BatchBuilder& out, Context& ctx) override {
    out.column(0).append<int64_t>(rec.id);
    const uint8_t* px = rec.bytes.data() + 1;
    if (opt_.layout == Cifar10Options::Layout::kCHW) {
      for (size_t c = 0; c < 3; ++c) {
        for (size_t p = 0; p < 1024; ++p) image_[c * 1024 + p] = lut_[c][px[c * 1024 + p]];
      }
    } else {
      for (size_t p = 0; p < 1024; ++p) {
        for (size_t c = 0; c < 3; ++c) image_[p * 3 + c] = lut_[c][px[c * 1024 + p]];
      }
    }
    out.column(1).append_values(image_.data(), image_.size());
    int64_t label = rec.bytes[0];
    // The active concept: how many change points are at or before this id.
    auto it = std::upper_bound(opt_.concept_changes.begin(), opt_.concept_changes.end(), rec.id,
                               [](int64_t id, const ConceptChange& c) { return id < c.at; });
    const int64_t concept_index = it - opt_.concept_changes.begin();
    if (concept_index > 0) label = opt_.concept_changes[static_cast<size_t>(concept_index - 1)].permutation[static_cast<size_t>(label)];
    out.column(2).append<int64_t>(label);
    if (!opt_.concept_changes.empty()) out.column(3).append<int64_t>(concept_index);
    if (concept_index > announced_concept_) {
      // The first record of a new concept this instance emits: a true change point for the
      // report (index: the change's record id; tolerance: how many stream positions before it
      // the shuffle buffers of the source's instances can emit its records, which the drift
      // matching rule allows a detection to precede it by, see tensair/drift/matching.hpp).
      announced_concept_ = concept_index;
      const int64_t tolerance =
          opt_.shuffle_buffer > 1 ? opt_.shuffle_buffer * ctx.info().instances : 0;
      ctx.log_event({{"kind", "concept_change"}, {"concept", concept_index},
                     {"index", opt_.concept_changes[static_cast<size_t>(concept_index - 1)].at},
                     {"tolerance", tolerance}});
    }
  }

 private:
  // A complete record this instance owns: checks its label.
  Read check(int64_t index, size_t file, int64_t record, CifarRecord& rec, Context& ctx) {
    const uint8_t label = rec.bytes[0];
    if (label >= kCifar10Classes) {
      ctx.dead_letter(detail::file_name(opt_.paths[file]) + ": record " + std::to_string(record) + " at byte offset " +
                          std::to_string(record * kCifar10RecordBytes) + ": label byte " + std::to_string(label) +
                          " is not 0..9",
                      record_hex(rec.bytes.data(), rec.bytes.size()));
      return Read::kSkipped;
    }
    rec.id = index;
    rec.file = static_cast<uint32_t>(file);
    rec.record = record;
    return Read::kItem;
  }

  Read read_cached(bool mine, int64_t index, CifarRecord& rec, Context& ctx) {
    if (slot_ >= slots_.size()) return Read::kEnd;
    const size_t slot = slot_++;
    if (!mine) return Read::kSkipped;
    const int64_t v = slots_[slot];
    if (v < 0) {
      const Tail& tail = tails_[static_cast<size_t>(-1 - v)];
      ctx.dead_letter(tail.reason, tail.hex);
      return Read::kSkipped;
    }
    std::memcpy(rec.bytes.data(), cache_bytes_.data() + v * kCifar10RecordBytes, kCifar10RecordBytes);
    // Which file and record the slot came from, for a dead letter's reason.
    auto f = std::upper_bound(files_.begin(), files_.end(), slot) - 1;
    return check(index, static_cast<size_t>(f - files_.begin()), static_cast<int64_t>(slot - *f), rec, ctx);
  }

  enum class Raw {
    kEnd,     // no more files
    kTail,    // a partial record at the end of a file (tail_reason_, tail_hex_)
    kRecord,  // a complete record in rec.bytes
  };
  // Reads the next position of the stream from the files (into the cache when caching): a
  // complete record into rec.bytes, a partial tail at the end of a file (its dead-letter reason
  // in tail_reason_), or the end of the files.
  Raw read_raw(CifarRecord& rec) {
    for (;;) {
      if (!file_) {
        if (caching_) cache_complete_ = true;
        return Raw::kEnd;
      }
      const uint64_t offset = file_->position();
      size_t got = file_->read_full(rec.bytes.data(), rec.bytes.size());
      if (got == rec.bytes.size()) break;
      if (got > 0) {
        tail_reason_ = detail::file_name(file_->path()) + ": partial record of " +
                       std::to_string(got) + " bytes at byte offset " + std::to_string(offset) +
                       " (the data is not a multiple of 3073 bytes; the tail is ignored)";
        tail_hex_ = record_hex(rec.bytes.data(), got);
        if (caching_) {
          slots_.push_back(-1 - static_cast<int64_t>(tails_.size()));
          tails_.push_back({tail_reason_, tail_hex_});
          cache_hash_ = fnv1a(cache_hash_, tail_reason_.data(), tail_reason_.size());
        }
        next_file();
        return Raw::kTail;
      }
      next_file();
    }
    record_in_file_++;
    if (caching_) {
      slots_.push_back(static_cast<int64_t>(cache_bytes_.size() / kCifar10RecordBytes));
      cache_bytes_.insert(cache_bytes_.end(), rec.bytes.begin(), rec.bytes.end());
      cache_hash_ = fnv1a(cache_hash_, rec.bytes.data(), rec.bytes.size());
    }
    return Raw::kRecord;
  }

  // Restore with caching: reads the first pass again, from the start, up to `positions`
  // positions (all of it when `complete`), and checks the cache against the saved fingerprint.
  void rebuild_cache(uint64_t positions, bool complete, uint64_t hash, dataflow::StateReader& state,
                     Context& ctx) {
    clear_cache();
    file_index_ = 0;
    open_file();
    CifarRecord rec;
    while (complete || slots_.size() < positions) {
      if (ctx.cancelled()) throw Cancelled();
      if (read_raw(rec) == Raw::kEnd) break;
    }
    if (slots_.size() != positions || cache_complete_ != complete || cache_hash_ != hash) {
      state.fail("the input files differ from those the checkpoint read (" +
                 std::to_string(positions) + " positions saved, " + std::to_string(slots_.size()) +
                 " read again, or different bytes)");
    }
  }

  void clear_cache() {
    cache_bytes_.clear();
    slots_.clear();
    tails_.clear();
    files_.clear();
    cache_complete_ = false;
    cache_hash_ = kFnvBasis;
  }

  int64_t announced_concept_ = 0;

  void open_file() {
    record_in_file_ = 0;
    if (file_index_ >= opt_.paths.size()) {
      file_.reset();
      return;
    }
    file_ = std::make_unique<FileReader>(opt_.paths[file_index_]);
    if (caching_) files_.push_back(slots_.size());
  }
  void next_file() {
    file_index_++;
    open_file();
  }

  Cifar10Options opt_;
  std::unique_ptr<FileReader> file_;
  size_t file_index_ = 0;
  int64_t record_in_file_ = 0;
  std::optional<uint64_t> resume_at_;  // restore: where file_ resumes, once complete_items ran
  float lut_[3][256];
  std::array<float, 3072> image_{};
  // The cache of the first pass.
  bool caching_;
  bool cache_complete_ = false;
  std::vector<uint8_t> cache_bytes_;  // complete records, back to back
  std::vector<int64_t> slots_;        // per position: record number in cache_bytes_, or -1 - tail
  // A partial tail's dead letter: its reason and its bytes in hex (record_hex).
  struct Tail {
    std::string reason, hex;
  };
  std::vector<Tail> tails_;           // the partial tails met in the cached pass
  std::vector<size_t> files_;         // first slot of each file
  uint64_t cache_hash_ = kFnvBasis;   // fingerprint of the cache (checked on restore)
  size_t slot_ = 0;
  std::string tail_reason_;  // read_raw's reason for the last partial tail
  std::string tail_hex_;     // and its bytes in hex
};

}  // namespace

std::vector<std::filesystem::path> cifar10_train_files() {
  std::vector<std::filesystem::path> out;
  for (int i = 1; i <= 5; ++i) out.push_back(find_variant(data_dir() / "cifar10" / ("data_batch_" + std::to_string(i) + ".bin")));
  return out;
}

std::vector<std::filesystem::path> cifar10_test_files() {
  return {find_variant(data_dir() / "cifar10" / "test_batch.bin")};
}

void check_concept_change(const ConceptChange& change) {
  std::array<bool, 10> seen{};
  std::string text;
  for (int64_t v : change.permutation) text += (text.empty() ? "" : ",") + std::to_string(v);
  for (int64_t v : change.permutation) {
    if (v < 0 || v > 9) {
      throw ConfigError("permutation [" + text + "] must list each label 0..9 once; " + std::to_string(v) +
                        " is not a label");
    }
    if (seen[static_cast<size_t>(v)]) {
      throw ConfigError("permutation [" + text + "] must list each label 0..9 once; " + std::to_string(v) +
                        " appears twice");
    }
    seen[static_cast<size_t>(v)] = true;
  }
  if (change.at < 0) throw ConfigError("concept change point at = " + std::to_string(change.at) + " is negative");
}

std::shared_ptr<const dataflow::OperatorDef> cifar10_source(Cifar10Options o) {
  if (o.paths.empty()) o.paths = cifar10_train_files();
  for (const auto& p : o.paths) ops::require_input_file(p);
  ops::check_source_options(o.source);
  if (o.shuffle_buffer < 0) throw ConfigError("shuffle_buffer must not be negative (0: stream order)");
  for (size_t i = 0; i < o.concept_changes.size(); ++i) {
    check_concept_change(o.concept_changes[i]);
    if (i > 0 && o.concept_changes[i].at <= o.concept_changes[i - 1].at) {
      throw ConfigError("concept changes must have increasing \"at\": change " + std::to_string(i + 1) + " at " +
                        std::to_string(o.concept_changes[i].at) + " follows one at " +
                        std::to_string(o.concept_changes[i - 1].at));
    }
  }
  const bool hwc = o.layout == Cifar10Options::Layout::kHWC;
  Schema schema{{"id", DType::kInt64, {}},
                {"image", DType::kFloat32, hwc ? std::vector<int64_t>{32, 32, 3} : std::vector<int64_t>{3, 32, 32}},
                {"label", DType::kInt64, {}}};
  if (!o.concept_changes.empty()) schema.push_back({"concept", DType::kInt64, {}});

  std::string params = "path=";
  for (size_t i = 0; i < o.paths.size(); ++i) params += (i ? "," : "") + o.paths[i].filename().string();
  params += std::string(" layout=") + (hwc ? "hwc" : "chw") + " normalize=" + (o.normalize ? "true" : "false");
  if (o.cache && o.source.replay != 1) params += " cache=true";
  if (o.shuffle_buffer > 0) params += " shuffle_buffer=" + std::to_string(o.shuffle_buffer) + " seed=" + std::to_string(o.seed);
  if (!o.concept_changes.empty()) {
    params += " concept_changes_at=";
    for (size_t i = 0; i < o.concept_changes.size(); ++i) params += (i ? "," : "") + std::to_string(o.concept_changes[i].at);
  }
  params += " " + ops::source_options_text(o.source);
  return dataflow::operator_def({
      "cifar10_source", {}, std::vector<dataflow::PortSpec>{{"out", schema}},
      [o, schema](const dataflow::InstanceInfo& info) { return std::make_unique<CifarSource>(o, schema, info); },
      params});
}

}  // namespace tensair::io
