// The model's `device` key: every branch of its resolution (no GPU needed: the environment is
// given), the local rank from the launcher's variables, host staging that copies nothing on the
// CPU, and replicas built through the device path that train exactly like the default and still
// exchange and end equal. The CUDA path itself is checked by bench/gpu_check.sh on a GPU host.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "model/delta.hpp"
#include "model/device.hpp"
#include "model/model_test_util.hpp"
#include "tensair/common/error.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::model {
namespace {

using dataflow::Batch;
using testing::TempDir;

constexpr DeviceEnv kNoCuda{false, 0, 0};
DeviceEnv gpus(int count, int local_rank = 0) { return {true, count, local_rank}; }

// The message of the ConfigError that resolve_device throws (nullopt: it did not throw).
std::optional<std::string> refusal(const std::string& value, const DeviceEnv& env) {
  try {
    resolve_device(value, env);
  } catch (const ConfigError& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

TEST(DeviceTest, CpuNeedsNoCudaAndIsTheDefault) {
  EXPECT_EQ(resolve_device("cpu", kNoCuda), DeviceId{});
  EXPECT_EQ(resolve_device("cpu", gpus(2, 1)), DeviceId{});
  EXPECT_EQ(resolve_device(ModelOptions{}.device, kNoCuda), DeviceId{});
  EXPECT_EQ(DeviceId{}.name(), "cpu");
}

TEST(DeviceTest, CudaValuesNameTheirDevice) {
  EXPECT_EQ(resolve_device("cuda", gpus(2, 1)), (DeviceId{true, 0}));
  EXPECT_EQ(resolve_device("cuda:3", gpus(4)), (DeviceId{true, 3}));
  EXPECT_EQ(resolve_device("cuda:3", gpus(4)).name(), "cuda:3");
  EXPECT_EQ(resolve_device("cuda:local_rank", gpus(2, 1)), (DeviceId{true, 1}));
  EXPECT_EQ(resolve_device("cuda:local_rank", gpus(2, 0)), (DeviceId{true, 0}));
}

TEST(DeviceTest, AnIndexAtOrAboveTheDeviceCountIsRefusedInOneLine) {
  auto why = refusal("cuda:2", gpus(2));
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "\"cuda:2\": CUDA device 2 does not exist; this host has 2 CUDA devices "
                  "(cuda:0..cuda:1)");
  why = refusal("cuda:local_rank", gpus(1, 1));
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("local rank is 1"), std::string::npos) << *why;
  EXPECT_NE(why->find("this host has 1 CUDA device (cuda:0)"), std::string::npos) << *why;
  EXPECT_EQ(why->find('\n'), std::string::npos) << *why;
}

TEST(DeviceTest, MalformedValuesAreRefusedNamingTheKeyAndTheKnownValues) {
  for (const char* bad : {"cuda:x", "gpu", "cuda:", "cuda:-1", "cuda:+1", "cuda:1x", "CUDA",
                          " cpu", "cuda:99999999999", ""}) {
    const auto why = refusal(bad, gpus(2));
    ASSERT_TRUE(why) << bad;
    EXPECT_EQ(*why, "unknown device \"" + std::string(bad) +
                        "\" (known: cpu, cuda, cuda:N, cuda:local_rank, auto)");
  }
}

TEST(DeviceTest, CudaValuesWithoutCudaAreRefusedPointingAtTheBuild) {
  for (const char* value : {"cuda", "cuda:0", "cuda:local_rank"}) {
    const auto why = refusal(value, kNoCuda);
    ASSERT_TRUE(why) << value;
    EXPECT_EQ(*why, "\"" + std::string(value) +
                        "\" needs a LibTorch built with CUDA; this build is CPU-only "
                        "(TORCH_DIR=<a CUDA LibTorch> make, docs/model.md#devices)");
  }
  // CUDA compiled in, but no device visible (no driver, CUDA_VISIBLE_DEVICES="").
  const auto why = refusal("cuda", gpus(0));
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("needs a CUDA device, and none is visible"), std::string::npos) << *why;
}

TEST(DeviceTest, AutoIsTheCpuWithoutCudaElseTheLocalRanksDevice) {
  EXPECT_EQ(resolve_device("auto", kNoCuda), DeviceId{});
  EXPECT_EQ(resolve_device("auto", DeviceEnv{false, 0, 3}), DeviceId{});
  EXPECT_EQ(resolve_device("auto", gpus(0, 1)), DeviceId{});
  EXPECT_EQ(resolve_device("auto", gpus(2, 1)), (DeviceId{true, 1}));
  // More ranks than devices on the host: they share, in turn.
  EXPECT_EQ(resolve_device("auto", gpus(2, 3)), (DeviceId{true, 1}));
}

// Sets an environment variable for the scope of the object, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DeviceTest, TheLocalRankComesFromOpenMpiThenSlurmElseZero) {
  {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", "3");
    ScopedEnv slurm("SLURM_LOCALID", "5");
    EXPECT_EQ(local_rank_from_env(), 3);
  }
  {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", nullptr);
    ScopedEnv slurm("SLURM_LOCALID", "5");
    EXPECT_EQ(local_rank_from_env(), 5);
  }
  {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", "x");
    ScopedEnv slurm("SLURM_LOCALID", nullptr);
    EXPECT_EQ(local_rank_from_env(), 0);
  }
}

TEST(DeviceTest, ThisProcessReportsItsLibTorch) {
  const DeviceEnv env = device_env();
  if (at::hasCUDA()) {
    EXPECT_TRUE(env.cuda_built);
  }
  if (!env.cuda_built) {
    EXPECT_EQ(env.device_count, 0);
    EXPECT_TRUE(refusal("cuda", env)) << "a CUDA value must be refused on a CPU-only build";
  }
  EXPECT_EQ(resolve_device("auto", env).cuda, env.cuda_built && env.device_count > 0);
}

TEST(DeviceTest, HostStagingCopiesNothingOnTheCpu) {
  HostStaging staging;
  at::Tensor t = torch::arange(12, at::kFloat);
  EXPECT_TRUE(staging.to_host(t, 0).is_same(t));
  // Encoding a CPU delta still views the tensor's own memory.
  Message m;
  m.grads = {t};
  Batch b = encode_message(m, /*fp16=*/false, &staging);
  EXPECT_EQ(static_cast<const void*>(b.column("g0").value_bytes().data),
            static_cast<const void*>(t.data_ptr()));
}

// Replicas built through the device path ------------------------------------------------------

TEST(ModelDeviceTest, AnExplicitCpuTrainsBitEqualToTheDefault) {
  torch::set_num_threads(1);
  std::vector<Batch> data = batches(11, 30, 16, {8}, 3);
  ModelOptions o = mlp_options({8, 16, 3}, 0.1);
  TempDir dir_default, dir_cpu;
  RunResult by_default = run_model(1, {data}, xy_schema({8}), o, dir_default);
  ASSERT_FALSE(by_default.error()) << *by_default.error();
  o.device = "cpu";
  RunResult cpu = run_model(1, {data}, xy_schema({8}), o, dir_cpu);
  ASSERT_FALSE(cpu.error()) << *cpu.error();
  ASSERT_EQ(by_default.weights[0].size(), cpu.weights[0].size());
  for (size_t i = 0; i < cpu.weights[0].size(); ++i)
    EXPECT_TRUE(torch::equal(by_default.weights[0][i], cpu.weights[0][i])) << "parameter " << i;
  EXPECT_EQ(cpu.summary[0]["device"], "cpu");
  EXPECT_EQ(cpu.summary[0]["version"], 30);
}

TEST(ModelDeviceTest, ReplicasThroughTheDevicePathExchangeAndEndEqual) {
  torch::set_num_threads(1);
  // "auto" resolves to the CPU on a host without CUDA (and to the local rank's GPU on one).
  for (const char* device : {"cpu", "auto"}) {
    for (bool fp16 : {false, true}) {
      TempDir dir;
      std::vector<std::vector<Batch>> data = {batches(12, 15, 8, {8}, 3),
                                              batches(13, 9, 8, {8}, 3)};
      ModelOptions o = mlp_options({8, 16, 3}, 0.05);
      o.device = device;
      o.fp16 = fp16;
      RunResult r = run_model(2, data, xy_schema({8}), o, dir);
      ASSERT_FALSE(r.error()) << *r.error();
      ASSERT_EQ(r.weights.size(), 2u);
      // fp16 rounds what travels, and each replica applies its own step exactly: they differ
      // by the rounding of the updates they received (measured 1.3e-5 here; float32: 3e-8).
      EXPECT_LT(max_diff(r.weights[0], r.weights[1]), fp16 ? 1e-4 : 1e-5)
          << device << (fp16 ? ", fp16" : "");
      for (int k = 0; k < 2; ++k) {
        EXPECT_EQ(r.summary[k]["version"], 24) << device << ", rank " << k;
        EXPECT_EQ(r.summary[k]["deltas_applied"].get<int64_t>() > 0, true);
        EXPECT_EQ(r.summary[k]["device"], resolve_device(device, device_env()).name());
      }
    }
  }
}

}  // namespace
}  // namespace tensair::model
