#include "fuzz_support.hpp"

#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "tensair/common/error.hpp"
#include "tensair/dataflow/batch_codec.hpp"
#include "tensair/dataflow/operator.hpp"
#include "tensair/drift/operator.hpp"
#include "tensair/io/types.hpp"
#include "tensair/job/job.hpp"
#include "tensair/runtime/frame.hpp"

namespace tensair::fuzz {

namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path path;
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/tensair-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("tensair fuzz: mkdtemp");
      std::abort();
    }
    path = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

}  // namespace

const fs::path& scratch_dir() {
  static Scratch scratch;
  return scratch.path;
}

fs::path write_scratch(const std::string& name, std::string_view bytes) {
  fs::path p = scratch_dir() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "tensair fuzz: cannot write %s\n", p.c_str());
    std::abort();
  }
  return p;
}

void tolerate_errors(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error&) {
    // A clean refusal: what every decoder may answer to bad bytes.
  }
}

namespace {

dataflow::InstanceInfo info_of(const dataflow::OperatorNode& node) {
  dataflow::InstanceInfo info;
  info.name = node.name;
  info.type = node.def->type();
  info.out_dir = scratch_dir() / "out";
  return info;
}

}  // namespace

Instance::Instance(const dataflow::OperatorNode& node)
    : ctx(info_of(node)), op(node.def->instantiate(ctx.info())) {}

std::string payload_of(const dataflow::Batch& batch) {
  runtime::OutFrame f;
  dataflow::encode_batch(dataflow::share(batch), f);
  runtime::InFrame packed = runtime::pack_frame(f, 0);
  return std::string(reinterpret_cast<const char*>(packed.payload()), packed.payload_size());
}

SourceRun run_source(const std::string& job_toml, const std::string& source, int max_calls) {
  static const bool registered = [] {
    io::register_job_types();
    drift::register_job_types();
    return true;
  }();
  (void)registered;
  std::string text = job_toml;
  replace_all(text, "${SCRATCH}", scratch_dir().string());
  const fs::path file = write_scratch("job.toml", text);
  job::LoadOptions options;
  options.out_dir = scratch_dir() / "out";
  job::Job j = job::load_job(file, options);
  const int op = j.graph.find(source);
  if (op < 0) throw ConfigError("fuzz job has no operator \"" + source + "\"");
  Instance instance(j.graph.operators()[static_cast<size_t>(op)]);
  testing::RecordingContext& ctx = instance.ctx;
  instance.op->open(ctx);
  for (int i = 0; i < max_calls; ++i) {
    if (instance.op->produce(ctx) == dataflow::SourceState::kDone) break;
  }
  instance.op->on_finish(ctx);
  SourceRun run;
  for (const auto& [port, batches] : ctx.all_emitted()) {
    for (const auto& b : batches) {
      run.rows += b->rows();
      run.batches++;
    }
  }
  run.dead_letters = static_cast<int64_t>(ctx.dead_letters().size());
  return run;
}

std::vector<std::string_view> split_pieces(std::string_view data, size_t max_pieces) {
  static constexpr std::string_view kSep = "\n--8<--\n";
  std::vector<std::string_view> out;
  while (out.size() + 1 < max_pieces) {
    const size_t at = data.find(kSep);
    if (at == std::string_view::npos) break;
    out.push_back(data.substr(0, at));
    data.remove_prefix(at + kSep.size());
  }
  out.push_back(data);
  return out;
}

std::string gzip(const std::string& s) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, static_cast<uLong>(s.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  z.avail_in = static_cast<uInt>(s.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::shared_ptr<std::byte> aligned_copy(const uint8_t* data, size_t size) {
  auto p = runtime::allocate_aligned(size);
  if (size) std::memcpy(p.get(), data, size);
  return p;
}

}  // namespace tensair::fuzz
