#include "model/device.hpp"

#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

#include "tensair/common/error.hpp"

namespace tensair::model {
namespace {

constexpr const char* kLocalRank = "cuda:local_rank";
constexpr int kMaxIndex = 1 << 16;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// "cuda:N" with N a plain decimal index (no sign, no spaces); -1 otherwise.
int cuda_index(const std::string& value) {
  if (!value.starts_with("cuda:") || value.size() == 5) return -1;
  const char* first = value.data() + 5;
  const char* last = value.data() + value.size();
  int n = -1;
  auto [end, ec] = std::from_chars(first, last, n);
  if (ec != std::errc() || end != last || n < 0 || n >= kMaxIndex || *first == '+') return -1;
  return n;
}

std::string devices_here(int count) {
  if (count == 1) return "this host has 1 CUDA device (cuda:0)";
  return "this host has " + std::to_string(count) + " CUDA devices (cuda:0..cuda:" +
         std::to_string(count - 1) + ")";
}

// A CUDA device for `value`: refused without CUDA, or when `index` is not a device here.
DeviceId cuda_device(const std::string& value, int index, const DeviceEnv& env,
                     const std::string& which) {
  if (!env.cuda_built) {
    throw ConfigError(quoted(value) +
                      " needs a LibTorch built with CUDA; this build is CPU-only "
                      "(TORCH_DIR=<a CUDA LibTorch> make, docs/model.md#devices)");
  }
  if (env.device_count <= 0) {
    throw ConfigError(quoted(value) +
                      " needs a CUDA device, and none is visible to this process (check "
                      "nvidia-smi and CUDA_VISIBLE_DEVICES; docs/model.md#devices)");
  }
  if (index >= env.device_count) {
    throw ConfigError(quoted(value) + ": " + which + " " + std::to_string(index) +
                      " does not exist; " + devices_here(env.device_count));
  }
  return {true, index};
}

}  // namespace

const char* const kDeviceValues = "cpu, cuda, cuda:N, cuda:local_rank, auto";

std::string DeviceId::name() const { return cuda ? "cuda:" + std::to_string(index) : "cpu"; }

DeviceId resolve_device(const std::string& value, const DeviceEnv& env) {
  if (value == "cpu") return {};
  if (value == "auto") {
    if (!env.cuda_built || env.device_count <= 0) return {};
    return {true, std::max(0, env.local_rank) % env.device_count};
  }
  if (value == "cuda") return cuda_device(value, 0, env, "CUDA device");
  if (value == kLocalRank) {
    return cuda_device(value, env.local_rank, env,
                       "the rank's local rank is " + std::to_string(env.local_rank) +
                           ", and CUDA device");
  }
  if (const int index = cuda_index(value); index >= 0)
    return cuda_device(value, index, env, "CUDA device");
  throw ConfigError("unknown device " + quoted(value) + " (known: " + kDeviceValues + ")");
}

int local_rank_from_env() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    const char* v = std::getenv(name);
    if (!v || !*v) continue;
    int n = 0;
    const char* end = v + std::char_traits<char>::length(v);
    auto [at, ec] = std::from_chars(v, end, n);
    if (ec == std::errc() && at == end && n >= 0) return n;
  }
  return 0;
}

DeviceEnv device_env() {
  DeviceEnv env;
  // The CUDA hooks are LibTorch's CUDA library; without it their stub refuses this query.
  try {
    (void)at::detail::getCUDAHooks().versionCUDART();
    env.cuda_built = true;
  } catch (const c10::Error&) {
    env.cuda_built = false;
  }
  env.device_count = env.cuda_built ? static_cast<int>(torch::cuda::device_count()) : 0;
  env.local_rank = local_rank_from_env();
  return env;
}

DeviceId resolve_device_here(const std::string& value) {
  return value == "cpu" ? DeviceId{} : resolve_device(value, device_env());
}

}  // namespace tensair::model
