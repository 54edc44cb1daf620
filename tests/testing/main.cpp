// Test main for every TensAIR test binary. Under mpirun it creates the process-wide MPI
// transport before the tests and destroys it (finalising MPI) after; ranks other than 0 print
// only failures, so a multi-rank run reads like a single one.
#include <gtest/gtest.h>

#include "testing/harness.hpp"

namespace tensair::testing {
std::unique_ptr<runtime::Transport>& mpi_slot();
}

#ifdef TENSAIR_TESTS_KEEP_DLOPENED
// Sanitizer builds (tests/testing/CMakeLists.txt): dlclose does nothing, so the libraries Open
// MPI dlopen's stay mapped until exit. LeakSanitizer then names them in the stacks of the
// allocations they keep to exit, which tests/lsan.supp suppresses; unloaded, they print as
// <unknown module> and cannot be. The test binary exports this symbol, so it is the one
// libopen-pal calls.
extern "C" int dlclose(void*) { return 0; }
#endif

namespace {
class FailuresOnly : public ::testing::EmptyTestEventListener {
 public:
  explicit FailuresOnly(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) {
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
    }
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int result = 0;
  if (tensair::testing::under_mpi()) {
    auto& t = tensair::testing::mpi_transport();
    if (t.rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
      listeners.Append(new FailuresOnly(t.rank()));
    }
    result = RUN_ALL_TESTS();
    tensair::testing::mpi_slot().reset();
  } else {
    result = RUN_ALL_TESTS();
  }
  return result;
}
