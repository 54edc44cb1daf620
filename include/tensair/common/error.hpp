// Errors that end a job. Every job-ending problem throws one of these; the CLI and the Python
// entry point catch once, print `tensair: error: <what>` and exit with exit_code().
//
// Layers add context on the way up with Error::with_context ("operator \"model\": ..."), so the
// user sees one line that says what went wrong and where. Expected per-record failures (a bad
// CSV row, an undecodable record) are not errors: they go to the dead-letter output.
#pragma once

#include <stdexcept>
#include <string>

namespace tensair {

// Process exit codes. kConfig is also used for missing or unreadable input files named in a
// job, since both are mistakes the user fixes in the job file or on the command line.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,  // the job failed while running (I/O, transport, model, a worker's exception)
  kConfig = 2,   // bad command line, bad job file, missing input file: nothing was run
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ExitCode code = ExitCode::kFailure)
      : std::runtime_error(what), code_(code) {}
  ExitCode exit_code() const { return code_; }

  // Returns a copy of this error (same dynamic kind and exit code) whose message is
  // "<context>: <message>". Use when rethrowing across a layer or operator boundary.
  [[noreturn]] void rethrow_with_context(const std::string& context) const;

 private:
  ExitCode code_;
};

// A bad job file, command line or parameter value. Exit code 2.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what, ExitCode::kConfig) {}
};

// A file that cannot be opened, read or written. Exit code 2 when raised at start-up for a
// missing input (the constructor flag), 1 otherwise.
class IoError : public Error {
 public:
  explicit IoError(const std::string& what, ExitCode code = ExitCode::kFailure)
      : Error(what, code) {}
};

// MPI failures and frames that fail validation (bad magic, checksum, length, channel).
class TransportError : public Error {
 public:
  explicit TransportError(const std::string& what) : Error(what) {}
};

// A record batch or payload that fails validation where it cannot be dead-lettered.
class DataError : public Error {
 public:
  explicit DataError(const std::string& what) : Error(what) {}
};

// The model layer: shape mismatches, NaN policy stops, bad checkpoints.
class ModelError : public Error {
 public:
  explicit ModelError(const std::string& what) : Error(what) {}
};

// This rank stopped because another rank failed; that rank reports the error itself, so the
// CLI prints nothing for this one (it only exits with the same code).
class PeerFailure : public Error {
 public:
  PeerFailure(const std::string& what, ExitCode code) : Error(what, code) {}
};

// Thrown inside worker threads when the job is being cancelled (another worker or rank
// failed). Never shown to the user: the original error is.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

}  // namespace tensair

// Programmer errors: conditions that no input can trigger. Throws tensair::Error with the
// source location so a broken invariant still ends the job cleanly.
#define TENSAIR_ASSERT(cond, msg)                                                       \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      throw ::tensair::Error(std::string("internal error at ") + __FILE__ + ":" +       \
                             std::to_string(__LINE__) + ": " + (msg) + " (" #cond ")"); \
    }                                                                                   \
  } while (0)
