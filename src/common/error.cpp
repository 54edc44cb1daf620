#include "tensair/common/error.hpp"

namespace tensair {

void Error::rethrow_with_context(const std::string& context) const {
  std::string msg = context + ": " + what();
  if (dynamic_cast<const ConfigError*>(this)) throw ConfigError(msg);
  if (dynamic_cast<const IoError*>(this)) throw IoError(msg, exit_code());
  if (dynamic_cast<const TransportError*>(this)) throw TransportError(msg);
  if (dynamic_cast<const DataError*>(this)) throw DataError(msg);
  if (dynamic_cast<const ModelError*>(this)) throw ModelError(msg);
  if (dynamic_cast<const Cancelled*>(this)) throw Cancelled();
  if (dynamic_cast<const PeerFailure*>(this)) throw PeerFailure(msg, exit_code());
  throw Error(msg, exit_code());
}

}  // namespace tensair
