// Where a model replica runs: the job file's `device` key (ModelOptions::device), resolved on
// one rank to the CPU or one CUDA device (docs/model.md#devices).
//
// Resolution is a pure function of the value and a DeviceEnv (is CUDA compiled in, how many
// devices, the rank's local rank), so that every branch is tested on a machine without a GPU;
// device_env() fills a DeviceEnv from this process's LibTorch and environment. This header is
// free of LibTorch; model_instance.cpp turns a DeviceId into an at::Device.
#pragma once

#include <string>

namespace tensair::model {

// A resolved device: the CPU, or CUDA device `index`.
struct DeviceId {
  bool cuda = false;
  int index = 0;  // cuda only

  std::string name() const;  // "cpu", "cuda:1"
  bool operator==(const DeviceId&) const = default;
};

// What resolution depends on.
struct DeviceEnv {
  bool cuda_built = false;  // this LibTorch has CUDA kernels
  int device_count = 0;     // CUDA devices visible to this process
  int local_rank = 0;       // the rank's index among the ranks of its host
};

// The values `device` takes, for messages: "cpu, cuda, cuda:N, cuda:local_rank, auto".
extern const char* const kDeviceValues;

// Resolves `value`:
//   "cpu"              the CPU (the default)
//   "cuda"             CUDA device 0 (LibTorch's current device in a fresh process)
//   "cuda:N"           CUDA device N
//   "cuda:local_rank"  CUDA device env.local_rank
//   "auto"             cuda:local_rank when CUDA is compiled in and a device is visible (on a
//                      host with fewer devices than ranks, local_rank modulo the device count:
//                      ranks share devices), else the CPU
// Throws ConfigError with one line that starts with the quoted value (the caller names the
// key) for an unknown value, a CUDA value without CUDA (CPU-only LibTorch, or no device) and
// an index at or above the device count. Never throws for "cpu" or "auto".
DeviceId resolve_device(const std::string& value, const DeviceEnv& env);

// The rank's index among the ranks of its host: OMPI_COMM_WORLD_LOCAL_RANK, else
// SLURM_LOCALID, else 0.
int local_rank_from_env();

// This process: whether LibTorch has CUDA, its visible device count, local_rank_from_env().
// Creates no CUDA context (the count comes from the runtime's device query).
DeviceEnv device_env();

// resolve_device(value, device_env()), without asking LibTorch anything for "cpu".
DeviceId resolve_device_here(const std::string& value);

}  // namespace tensair::model
