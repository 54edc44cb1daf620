#include "tensair/dataflow/batch_codec.hpp"

#include <cstring>

namespace tensair::dataflow {
namespace {

constexpr size_t kMaxColumns = 4096;
constexpr size_t kMaxDims = 8;

struct BatchPrefix {
  uint32_t magic;
  uint16_t version;
  uint16_t columns;
  int64_t rows;
};
static_assert(sizeof(BatchPrefix) == 16);

struct ColumnDescriptor {
  uint8_t dtype;
  uint8_t ndim;
  uint16_t name_len;
  uint32_t flags;
  uint64_t values_offset;
  uint64_t values_bytes;
  uint64_t offsets_offset;
  uint64_t offsets_bytes;
};
static_assert(sizeof(ColumnDescriptor) == 40);

size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

size_t descriptor_bytes(const Column& c) {
  return sizeof(ColumnDescriptor) + c.record_shape().size() * sizeof(int64_t) +
         pad8(c.name().size());
}

// What goes on the wire for one column: its values and, for strings, offsets rebased to 0.
struct WireColumn {
  runtime::Segment values;
  runtime::Segment offsets;
  std::shared_ptr<std::vector<int64_t>> rebased;  // owns rebased offsets when needed
};

WireColumn wire_column(const Column& c) {
  WireColumn w;
  if (c.dtype() != DType::kString) {
    w.values = {c.value_bytes().data, c.value_bytes().size};
    return w;
  }
  const int64_t* off = reinterpret_cast<const int64_t*>(c.offset_bytes().data);
  const int64_t rows = c.rows();
  w.values = {c.value_bytes().data + off[0], static_cast<size_t>(off[rows] - off[0])};
  if (off[0] == 0) {
    w.offsets = {c.offset_bytes().data, c.offset_bytes().size};
  } else {
    w.rebased = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(rows + 1));
    for (int64_t i = 0; i <= rows; ++i) (*w.rebased)[static_cast<size_t>(i)] = off[i] - off[0];
    w.offsets = {reinterpret_cast<const std::byte*>(w.rebased->data()),
                 w.rebased->size() * sizeof(int64_t)};
  }
  return w;
}

}  // namespace

void encode_batch(const BatchPtr& batch, runtime::OutFrame& frame) {
  const auto& cols = batch->columns();
  std::vector<WireColumn> wire;
  wire.reserve(cols.size());
  size_t meta_bytes = sizeof(BatchPrefix);
  for (const Column& c : cols) {
    wire.push_back(wire_column(c));
    meta_bytes += descriptor_bytes(c);
  }
  // Parts in order: for each column, values then (strings) offsets.
  std::vector<size_t> sizes;
  frame.parts.clear();
  std::vector<std::shared_ptr<std::vector<int64_t>>> rebased;
  for (size_t i = 0; i < cols.size(); ++i) {
    frame.parts.push_back(wire[i].values);
    sizes.push_back(wire[i].values.size);
    if (cols[i].dtype() == DType::kString) {
      frame.parts.push_back(wire[i].offsets);
      sizes.push_back(wire[i].offsets.size);
      if (wire[i].rebased) rebased.push_back(wire[i].rebased);
    }
  }
  std::vector<size_t> offsets = runtime::part_offsets(meta_bytes, sizes);

  frame.meta.assign(meta_bytes, std::byte{0});
  std::byte* p = frame.meta.data();
  BatchPrefix prefix{kBatchMagic, kBatchVersion, static_cast<uint16_t>(cols.size()), batch->rows()};
  std::memcpy(p, &prefix, sizeof prefix);
  p += sizeof prefix;
  size_t part = 0;
  for (size_t i = 0; i < cols.size(); ++i) {
    const Column& c = cols[i];
    ColumnDescriptor d{};
    d.dtype = static_cast<uint8_t>(c.dtype());
    d.ndim = static_cast<uint8_t>(c.record_shape().size());
    d.name_len = static_cast<uint16_t>(c.name().size());
    d.values_offset = offsets[part];
    d.values_bytes = sizes[part];
    ++part;
    if (c.dtype() == DType::kString) {
      d.offsets_offset = offsets[part];
      d.offsets_bytes = sizes[part];
      ++part;
    }
    std::memcpy(p, &d, sizeof d);
    p += sizeof d;
    for (int64_t dim : c.record_shape()) {
      std::memcpy(p, &dim, sizeof dim);
      p += sizeof dim;
    }
    std::memcpy(p, c.name().data(), c.name().size());
    p += pad8(c.name().size());
  }
  if (rebased.empty()) {
    frame.keepalive = batch;
  } else {
    auto keep = std::make_shared<std::pair<BatchPtr, decltype(rebased)>>(batch, std::move(rebased));
    frame.keepalive = keep;
  }
}

Batch decode_batch(std::shared_ptr<const void> owner, const std::byte* payload, size_t size) {
  auto fail = [](const std::string& why) { throw DataError("invalid batch: " + why); };
  // Reads `n` bytes at `*at`, advancing it; never past `size`.
  size_t at = 0;
  auto read = [&](void* out, size_t n) {
    if (n > size - at) fail("descriptor runs past the " + std::to_string(size) + "-byte payload");
    std::memcpy(out, payload + at, n);
    at += n;
  };
  if (size < sizeof(BatchPrefix)) fail("payload of " + std::to_string(size) + " bytes is too short");
  BatchPrefix prefix;
  read(&prefix, sizeof prefix);
  if (prefix.magic != kBatchMagic) fail("bad magic");
  if (prefix.version != kBatchVersion) {
    fail("unsupported version " + std::to_string(prefix.version) + " (this build reads " +
         std::to_string(kBatchVersion) + ")");
  }
  if (prefix.columns > kMaxColumns) fail(std::to_string(prefix.columns) + " columns");
  if (prefix.rows < 0) fail("negative row count");

  auto range = [&](uint64_t offset, uint64_t bytes, size_t align, const std::string& what) {
    if (offset > size || bytes > size - offset) {
      fail(what + " [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
           ") runs past the " + std::to_string(size) + "-byte payload");
    }
    if (align > 1 && offset % align != 0) fail(what + " is misaligned");
    return Bytes{owner, payload + offset, static_cast<size_t>(bytes)};
  };

  std::vector<Column> cols;
  cols.reserve(prefix.columns);
  for (size_t i = 0; i < prefix.columns; ++i) {
    ColumnDescriptor d;
    read(&d, sizeof d);
    if (d.dtype < 1 || d.dtype > 6) fail("column " + std::to_string(i) + ": unknown dtype " + std::to_string(d.dtype));
    if (d.ndim > kMaxDims) fail("column " + std::to_string(i) + ": " + std::to_string(d.ndim) + " dimensions");
    if (d.name_len == 0) fail("column " + std::to_string(i) + ": empty name");
    std::vector<int64_t> shape(d.ndim);
    for (auto& dim : shape) {
      read(&dim, sizeof dim);
      if (dim < 0) fail("column " + std::to_string(i) + ": negative dimension");
    }
    if (static_cast<size_t>(d.name_len) > size - at) fail("column name runs past the payload");
    std::string name(reinterpret_cast<const char*>(payload + at), d.name_len);
    at += pad8(d.name_len) <= size - at ? pad8(d.name_len) : size - at;
    DType dtype = static_cast<DType>(d.dtype);
    size_t align = dtype == DType::kString ? 1 : dtype_size(dtype);
    Bytes values = range(d.values_offset, d.values_bytes, align, "column \"" + name + "\" values");
    Bytes offsets;
    if (dtype == DType::kString) {
      offsets = range(d.offsets_offset, d.offsets_bytes, 8, "column \"" + name + "\" offsets");
    } else if (d.offsets_bytes != 0) {
      fail("column \"" + name + "\": offsets on a non-string column");
    }
    cols.emplace_back(std::move(name), dtype, std::move(shape), prefix.rows, std::move(values),
                      std::move(offsets));
  }
  Batch b(std::move(cols));
  if (prefix.columns == 0 && prefix.rows != 0) fail("rows without columns");
  return b;
}

// The payload laid out by the frame rule: meta, then each part at its aligned offset.
std::string encode_batch_bytes(const BatchPtr& batch) {
  runtime::OutFrame f;
  encode_batch(batch, f);
  std::vector<size_t> sizes;
  for (const runtime::Segment& s : f.parts) sizes.push_back(s.size);
  const std::vector<size_t> offsets = runtime::part_offsets(f.meta.size(), sizes);
  std::string out(f.payload_bytes(), '\0');
  if (!f.meta.empty()) std::memcpy(out.data(), f.meta.data(), f.meta.size());
  for (size_t i = 0; i < f.parts.size(); ++i) {
    if (f.parts[i].size > 0) std::memcpy(out.data() + offsets[i], f.parts[i].data, f.parts[i].size);
  }
  return out;
}

Batch decode_batch_bytes(std::string_view bytes) {
  // The decoder wants its payload 64-byte aligned (zero-copy columns point into it).
  std::shared_ptr<std::byte> buf = runtime::allocate_aligned(bytes.size());
  if (!bytes.empty()) std::memcpy(buf.get(), bytes.data(), bytes.size());
  return decode_batch(buf, buf.get(), bytes.size());
}

}  // namespace tensair::dataflow
