// The job-file names of the model's fixed option sets (model.hpp), one table per set.
#include <string>
#include <utility>

#include "tensair/common/error.hpp"
#include "tensair/model/model.hpp"

namespace tensair::model {
namespace {

template <class E, size_t N>
E parse(const std::pair<E, const char*> (&table)[N], const std::string& name, const char* what) {
  std::string known;
  for (const auto& [value, text] : table) {
    if (name == text) return value;
    known += (known.empty() ? "" : ", ") + std::string(text);
  }
  throw ConfigError("unknown " + std::string(what) + " \"" + name + "\" (known: " + known + ")");
}

template <class E, size_t N>
const char* name(const std::pair<E, const char*> (&table)[N], E v) {
  for (const auto& [value, text] : table) {
    if (value == v) return text;
  }
  return "?";
}

constexpr std::pair<Mode, const char*> kModes[] = {
    {Mode::kDasgd, "dasgd"}, {Mode::kSync, "sync"}, {Mode::kLocal, "local"}};
constexpr std::pair<Exchange, const char*> kExchanges[] = {{Exchange::kUpdate, "update"},
                                                           {Exchange::kGradient, "gradient"}};
constexpr std::pair<Training, const char*> kTrainings[] = {
    {Training::kAlways, "always"},
    {Training::kUntilConverged, "until_converged"},
    {Training::kNever, "never"}};
constexpr std::pair<NanPolicy, const char*> kNanPolicies[] = {{NanPolicy::kSkip, "skip"},
                                                              {NanPolicy::kError, "error"}};
constexpr std::pair<Loss, const char*> kLosses[] = {{Loss::kCrossEntropy, "cross_entropy"},
                                                    {Loss::kBce, "bce"},
                                                    {Loss::kMse, "mse"},
                                                    {Loss::kSgns, "sgns"}};
constexpr std::pair<Kernel, const char*> kKernels[] = {{Kernel::kAutograd, "autograd"},
                                                      {Kernel::kFused, "fused"}};
constexpr std::pair<OptimizerKind, const char*> kOptimizers[] = {{OptimizerKind::kSgd, "sgd"},
                                                                 {OptimizerKind::kAdam, "adam"}};

}  // namespace

Mode parse_mode(const std::string& n) { return parse(kModes, n, "mode"); }
Exchange parse_exchange(const std::string& n) { return parse(kExchanges, n, "exchange"); }
Training parse_training(const std::string& n) { return parse(kTrainings, n, "training"); }
NanPolicy parse_nan_policy(const std::string& n) { return parse(kNanPolicies, n, "nan_policy"); }
Loss parse_loss(const std::string& n) { return parse(kLosses, n, "loss"); }
OptimizerKind parse_optimizer(const std::string& n) { return parse(kOptimizers, n, "optimizer"); }
Kernel parse_kernel(const std::string& n) { return parse(kKernels, n, "kernel"); }
const char* name_of(Mode v) { return name(kModes, v); }
const char* name_of(Exchange v) { return name(kExchanges, v); }
const char* name_of(Training v) { return name(kTrainings, v); }
const char* name_of(NanPolicy v) { return name(kNanPolicies, v); }
const char* name_of(Loss v) { return name(kLosses, v); }
const char* name_of(OptimizerKind v) { return name(kOptimizers, v); }
const char* name_of(Kernel v) { return name(kKernels, v); }

}  // namespace tensair::model
