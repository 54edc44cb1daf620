#include "model/delta.hpp"

#include "tensair/common/error.hpp"

namespace tensair::model {

using dataflow::Batch;
using dataflow::Bytes;
using dataflow::Column;
using dataflow::DType;

namespace {

DType dtype_of_tensor(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kInt: return DType::kInt32;
    case at::kLong: return DType::kInt64;
    case at::kByte: return DType::kUInt8;
    default: throw ModelError(std::string("no column type for tensors of ") + c10::toString(t.scalar_type()));
  }
}

at::ScalarType scalar_type_of(DType t) {
  switch (t) {
    case DType::kFloat32: return at::kFloat;
    case DType::kFloat64: return at::kDouble;
    case DType::kInt32: return at::kInt;
    case DType::kInt64: return at::kLong;
    case DType::kUInt8: return at::kByte;
    case DType::kString: break;
  }
  throw ModelError("a string column cannot be a tensor");
}

Column scalar(const std::string& name, int64_t v) {
  dataflow::ColumnBuilder b({name, DType::kInt64, {}});
  b.append(v);
  return b.finish();
}

Column scalar(const std::string& name, double v) {
  dataflow::ColumnBuilder b({name, DType::kFloat64, {}});
  b.append(v);
  return b.finish();
}

// `t` in host memory: itself on the CPU, else staged (or copied when there is no staging).
at::Tensor host(const at::Tensor& t, HostStaging* staging, size_t slot) {
  if (t.is_cpu()) return t;
  return staging ? staging->to_host(t, slot) : t.cpu();
}

// Staging slots: three per parameter (dense values or sparse values, sparse row indices, and
// float16 bytes).
size_t slot_of(size_t parameter, size_t part) { return 3 * parameter + part; }

// Float16 bytes of a float tensor, as a uint8 column (converted on the tensor's device, so
// half the bytes cross to the host).
Column half_column(const std::string& name, const at::Tensor& t, HostStaging* staging,
                   size_t slot) {
  at::Tensor h = t.to(at::kHalf).contiguous();
  at::Tensor bytes = host(h.reshape({-1}).view(at::kByte), staging, slot);  // viewed as bytes
  return tensor_column(name, bytes, {bytes.numel()});
}

at::Tensor half_values(const Column& c, int64_t elements) {
  if (c.dtype() != DType::kUInt8 || c.record_elements() != 2 * elements) {
    throw DataError("column \"" + c.name() + "\" holds " + std::to_string(c.record_elements()) +
                    " bytes, expected " + std::to_string(2 * elements));
  }
  at::Tensor bytes = column_tensor(c).reshape({-1});
  return bytes.view(at::kHalf).to(at::kFloat);
}

}  // namespace

at::Tensor HostStaging::to_host(const at::Tensor& t, size_t slot) {
  if (t.is_cpu()) return t;
  if (slot >= buffers_.size()) buffers_.resize(slot + 1);
  at::Tensor& buffer = buffers_[slot];
  const int64_t n = t.numel();
  // A unique storage: no column (of a message in flight, queued or kept) views the buffer.
  if (!buffer.defined() || !buffer.storage().unique() || buffer.numel() < n ||
      buffer.scalar_type() != t.scalar_type()) {
    // Some room to grow: sparse deltas touch a different number of rows each step.
    buffer = at::empty({n + n / 4}, at::TensorOptions()
                                        .dtype(t.scalar_type())
                                        .device(at::kCPU)
                                        .pinned_memory(true));
  }
  at::Tensor out = buffer.narrow(0, 0, n).view(t.sizes());
  out.copy_(t);  // blocking: the bytes are on the host when it returns
  return out;
}

Column tensor_column(const std::string& name, const at::Tensor& t, std::vector<int64_t> record_shape, int64_t rows) {
  at::Tensor c = t.is_cpu() ? t.contiguous() : t.contiguous().cpu();
  auto owner = std::make_shared<at::Tensor>(c);
  Bytes bytes{owner, reinterpret_cast<const std::byte*>(c.data_ptr()), static_cast<size_t>(c.nbytes())};
  return Column(name, dtype_of_tensor(c), std::move(record_shape), rows, std::move(bytes));
}

at::Tensor column_tensor(const Column& c) {
  std::vector<int64_t> shape = c.shape();
  // from_blob does not copy; the caller keeps the batch alive while the tensor is used.
  return at::from_blob(const_cast<std::byte*>(c.value_bytes().data), shape,
                       at::TensorOptions().dtype(scalar_type_of(c.dtype())));
}

Batch encode_message(const Message& m, bool fp16, HostStaging* staging) {
  std::vector<Column> cols;
  cols.push_back(scalar("kind", static_cast<int64_t>(m.kind)));
  cols.push_back(scalar("sender", m.sender));
  cols.push_back(scalar("version", m.version));
  cols.push_back(scalar("steps", m.steps));
  cols.push_back(scalar("samples", m.samples));
  cols.push_back(scalar("step", m.step));
  cols.push_back(scalar("loss_sum", m.loss_sum));
  cols.push_back(scalar("acc_sum", m.acc_sum));
  for (size_t i = 0; i < m.grads.size(); ++i) {
    const at::Tensor& g = m.grads[i];
    if (!g.defined()) continue;
    std::string n = std::to_string(i);
    if (g.is_sparse()) {
      at::Tensor idx = host(g._indices().reshape({-1}).contiguous(), staging, slot_of(i, 1));
      at::Tensor val = g._values().to(at::kFloat).contiguous();
      cols.push_back(tensor_column("s" + n + ".idx", idx, {idx.numel()}));
      if (fp16) {
        cols.push_back(half_column("h" + n + ".val", val, staging, slot_of(i, 2)));
      } else {
        at::Tensor flat = host(val.reshape({-1}), staging, slot_of(i, 0));
        cols.push_back(tensor_column("s" + n + ".val", flat, {flat.numel()}));
      }
    } else if (fp16) {
      cols.push_back(half_column("h" + n, g, staging, slot_of(i, 2)));
    } else {
      at::Tensor flat = host(g.to(at::kFloat).reshape({-1}), staging, slot_of(i, 0));
      cols.push_back(tensor_column("g" + n, flat, {flat.numel()}));
    }
  }
  return Batch(std::move(cols));
}

Message decode_message(const dataflow::BatchPtr& batch, const std::vector<std::vector<int64_t>>& shapes) {
  const Batch& b = *batch;
  if (b.rows() != 1) throw DataError("model message with " + std::to_string(b.rows()) + " rows, expected 1");
  Message m;
  m.keep_alive = batch;
  const int64_t kind = b.column("kind").as_int64(0);
  if (kind != static_cast<int64_t>(MessageKind::kDelta) &&
      kind != static_cast<int64_t>(MessageKind::kFinished) &&
      kind != static_cast<int64_t>(MessageKind::kConverged) &&
      kind != static_cast<int64_t>(MessageKind::kSync)) {
    throw DataError("model message of unknown kind " + std::to_string(kind));
  }
  m.kind = static_cast<MessageKind>(kind);
  m.sender = b.column("sender").as_int64(0);
  m.version = b.column("version").as_int64(0);
  m.steps = b.column("steps").as_int64(0);
  m.samples = b.column("samples").as_int64(0);
  if (m.sender < 0 || m.version < 0 || m.steps < 0 || m.samples < 0) {
    throw DataError("model message with a negative sender, version, steps or samples (" +
                    std::to_string(m.sender) + ", " + std::to_string(m.version) + ", " +
                    std::to_string(m.steps) + ", " + std::to_string(m.samples) + ")");
  }
  m.step = b.column("step").as_int64(0);
  m.loss_sum = b.column("loss_sum").as_double(0);
  m.acc_sum = b.column("acc_sum").as_double(0);
  m.grads.resize(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    std::string n = std::to_string(i);
    int64_t numel = 1;
    for (int64_t d : shapes[i]) numel *= d;
    if (const Column* g = b.find("g" + n)) {
      if (g->dtype() != DType::kFloat32 || g->record_elements() != numel) {
        throw DataError("delta for parameter " + n + " has " + std::to_string(g->record_elements()) +
                        " values, the network has " + std::to_string(numel) + " (replicas of different networks?)");
      }
      m.grads[i] = column_tensor(*g).reshape(shapes[i]);
    } else if (const Column* h = b.find("h" + n)) {
      m.grads[i] = half_values(*h, numel).reshape(shapes[i]);
    } else if (const Column* idx = b.find("s" + n + ".idx")) {
      // Sparse rows exist only for parameters with rows (embedding tables), as int64 indices
      // and float32 (or float16 bytes) values.
      if (shapes[i].empty() || shapes[i][0] <= 0) {
        throw DataError("sparse delta for parameter " + n + ", which has no rows");
      }
      if (idx->dtype() != DType::kInt64) {
        throw DataError("sparse delta for parameter " + n + ": row indices of type " +
                        std::string(dtype_name(idx->dtype())) + ", expected int64");
      }
      int64_t row = numel / shapes[i][0];
      int64_t nnz = idx->record_elements();
      at::Tensor values;
      if (const Column* v = b.find("s" + n + ".val")) {
        if (v->dtype() != DType::kFloat32) {
          throw DataError("sparse delta for parameter " + n + ": values of type " +
                          std::string(dtype_name(v->dtype())) + ", expected float32");
        }
        if (v->record_elements() != nnz * row) throw DataError("sparse delta for parameter " + n + ": value count mismatch");
        values = column_tensor(*v);
      } else if (const Column* hv = b.find("h" + n + ".val")) {
        values = half_values(*hv, nnz * row);
      } else {
        throw DataError("sparse delta for parameter " + n + " without values");
      }
      at::Tensor indices = column_tensor(*idx).reshape({1, nnz});
      if (nnz > 0 && (indices.min().item<int64_t>() < 0 || indices.max().item<int64_t>() >= shapes[i][0])) {
        throw DataError("sparse delta for parameter " + n + ": row index out of range");
      }
      std::vector<int64_t> vshape = shapes[i];
      vshape[0] = nnz;
      m.grads[i] = at::sparse_coo_tensor(indices, values.reshape(vshape), shapes[i]);
    }
  }
  return m;
}

}  // namespace tensair::model
