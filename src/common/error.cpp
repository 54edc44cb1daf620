#include "tensair/common/error.hpp"

namespace tensair {

void Error::rethrow_with_context(const std::string& context) const {
  raise(kind(), context + ": " + what(), exit_code(), origin_rank_);
}

namespace {
template <class E>
[[noreturn]] void throw_as(E e, ExitCode code, int origin, ExitCode Error::*code_member,
                           int Error::*origin_member) {
  e.*code_member = code;
  e.*origin_member = origin;
  throw e;
}
}  // namespace

void Error::raise(ErrorKind kind, const std::string& what, ExitCode code, int origin_rank) {
  switch (kind) {
    case ErrorKind::kConfig:
      throw_as(ConfigError(what), code, origin_rank, &Error::code_, &Error::origin_rank_);
    case ErrorKind::kIo:
      throw_as(IoError(what), code, origin_rank, &Error::code_, &Error::origin_rank_);
    case ErrorKind::kTransport:
      throw_as(TransportError(what), code, origin_rank, &Error::code_, &Error::origin_rank_);
    case ErrorKind::kData:
      throw_as(DataError(what), code, origin_rank, &Error::code_, &Error::origin_rank_);
    case ErrorKind::kModel:
      throw_as(ModelError(what), code, origin_rank, &Error::code_, &Error::origin_rank_);
    case ErrorKind::kCancelled:
      throw Cancelled();
    case ErrorKind::kError:
      break;
  }
  throw_as(Error(what), code, origin_rank, &Error::code_, &Error::origin_rank_);
}

}  // namespace tensair
