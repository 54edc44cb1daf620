#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "tensair/dataflow/batch.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::dataflow {
namespace {

Batch sample() {
  ColumnBuilder x({"x", DType::kFloat32, {2, 3}});
  ColumnBuilder y({"y", DType::kInt64, {}});
  ColumnBuilder w({"word", DType::kString, {}});
  ColumnBuilder p({"pix", DType::kUInt8, {4}});
  ColumnBuilder d({"d", DType::kFloat64, {}});
  ColumnBuilder i({"i", DType::kInt32, {}});
  for (int r = 0; r < 5; ++r) {
    float xs[6];
    for (int k = 0; k < 6; ++k) xs[k] = static_cast<float>(r * 10 + k) + 0.5f;
    x.append_values(xs, 6);
    y.append<int64_t>(int64_t{1} << (40 + r));
    w.append_string(std::string(static_cast<size_t>(r), static_cast<char>('a' + r)));
    uint8_t px[4] = {static_cast<uint8_t>(r), 255, 0, 7};
    p.append_values(px, 4);
    d.append(r * 0.25);
    i.append<int32_t>(-r);
  }
  return Batch({x.finish(), y.finish(), w.finish(), p.finish(), d.finish(), i.finish()});
}

void expect_equal(const Batch& a, const Batch& b) {
  ASSERT_EQ(a.rows(), b.rows());
  ASSERT_EQ(a.num_columns(), b.num_columns());
  for (size_t c = 0; c < a.num_columns(); ++c) {
    const Column& x = a.columns()[c];
    const Column& y = b.columns()[c];
    EXPECT_EQ(x.name(), y.name());
    EXPECT_EQ(x.dtype(), y.dtype());
    EXPECT_EQ(x.record_shape(), y.record_shape());
    if (x.dtype() == DType::kString) {
      for (int64_t r = 0; r < x.rows(); ++r) EXPECT_EQ(x.str(r), y.str(r));
    } else {
      ASSERT_EQ(x.value_bytes().size, y.value_bytes().size);
      if (x.value_bytes().size > 0) {
        EXPECT_EQ(std::memcmp(x.value_bytes().data, y.value_bytes().data, x.value_bytes().size), 0);
      }
    }
  }
}

// Encodes into one packed frame and decodes its payload, as the receiving side does.
Batch round_trip(const Batch& b, runtime::InFrame* keep = nullptr) {
  runtime::OutFrame f;
  encode_batch(share(b), f);
  runtime::InFrame in = runtime::pack_frame(f, 0);
  Batch out = decode_batch(in.owner(), in.payload(), in.payload_size());
  if (keep) *keep = in;
  return out;
}

TEST(BatchTest, ShapesAndTypedAccess) {
  Batch b = sample();
  EXPECT_EQ(b.rows(), 5);
  EXPECT_EQ(b.column("x").shape(), (std::vector<int64_t>{5, 2, 3}));
  EXPECT_EQ(b.column("x").record_elements(), 6);
  EXPECT_FLOAT_EQ(b.column("x").values<float>()[6], 10.5f);
  EXPECT_EQ(b.column("word").str(3), "ddd");
  EXPECT_EQ(b.column("i").as_int64(4), -4);
  EXPECT_THROW(b.column("x").values<double>(), DataError);
}

TEST(BatchTest, MissingColumnErrorListsColumns) {
  Batch b = sample();
  try {
    b.column("label");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "no column \"label\" (columns: x, y, word, pix, d, i)");
  }
}

TEST(BatchTest, RejectsInconsistentColumns) {
  ColumnBuilder a({"a", DType::kInt64, {}});
  a.append<int64_t>(1);
  ColumnBuilder b({"b", DType::kInt64, {}});
  EXPECT_THROW(Batch({a.finish(), b.finish()}), DataError);
  EXPECT_THROW(Column("c", DType::kFloat32, {}, 3, Bytes::copy("abcd", 4)), DataError);
}

TEST(BatchTest, SliceAndTakeKeepValues) {
  Batch b = sample();
  Batch s = b.slice(1, 3);
  EXPECT_EQ(s.rows(), 3);
  EXPECT_EQ(s.column("word").str(0), "b");
  EXPECT_EQ(s.column("y").at<int64_t>(2), int64_t{1} << 43);
  std::vector<int64_t> rows{4, 0, 4};
  Batch t = b.take(rows);
  EXPECT_EQ(t.column("word").str(0), "eeee");
  EXPECT_EQ(t.column("word").str(1), "");
  EXPECT_EQ(t.column("pix").values<uint8_t>()[0], 4);
}

TEST(BatchTest, ConcatJoinsRows) {
  Batch b = sample();
  Batch c = concat_batches({share(b.slice(0, 2)), share(b.slice(2, 3))});
  expect_equal(b, c);
}

TEST(BatchCodecTest, RoundTripsEveryDtypeAndShape) {
  Batch b = sample();
  expect_equal(b, round_trip(b));
}

TEST(BatchCodecTest, RoundTripsSlicedStrings) {
  Batch b = sample().slice(2, 3);
  expect_equal(b, round_trip(b));
}

TEST(BatchCodecTest, DecodesWithoutCopyingIntoAlignedMemory) {
  runtime::InFrame in;
  Batch out = round_trip(sample(), &in);
  const std::byte* lo = in.buffer.get();
  const std::byte* hi = lo + in.size;
  for (const Column& c : out.columns()) {
    EXPECT_GE(c.value_bytes().data, lo);
    EXPECT_LT(c.value_bytes().data, hi);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(c.value_bytes().data) % 64, 0u) << c.name();
  }
}

TEST(BatchCodecTest, EmptyBatchRoundTrips) {
  ColumnBuilder a({"a", DType::kFloat32, {3}});
  Batch b({a.finish()});
  expect_equal(b, round_trip(b));
}

std::string decode_error(std::vector<std::byte> payload) {
  auto owner = std::make_shared<std::vector<std::byte>>(std::move(payload));
  try {
    decode_batch(owner, owner->data(), owner->size());
  } catch (const DataError& e) {
    return e.what();
  }
  return "(decoded)";
}

std::vector<std::byte> encoded_payload() {
  runtime::OutFrame f;
  encode_batch(share(sample()), f);
  runtime::InFrame in = runtime::pack_frame(f, 0);
  return std::vector<std::byte>(in.payload(), in.payload() + in.payload_size());
}

TEST(BatchCodecTest, RejectsCorruptPayloads) {
  auto p = encoded_payload();
  EXPECT_EQ(decode_error({}), "invalid batch: payload of 0 bytes is too short");
  auto bad_magic = p;
  bad_magic[0] = std::byte{0};
  EXPECT_EQ(decode_error(bad_magic), "invalid batch: bad magic");
  auto bad_version = p;
  bad_version[4] = std::byte{9};
  EXPECT_EQ(decode_error(bad_version), "invalid batch: unsupported version 9 (this build reads 1)");
  auto bad_dtype = p;
  bad_dtype[16] = std::byte{42};
  EXPECT_EQ(decode_error(bad_dtype), "invalid batch: column 0: unknown dtype 42");
  auto truncated = p;
  truncated.resize(p.size() / 2);
  EXPECT_NE(decode_error(truncated).find("runs past"), std::string::npos);
  auto more_rows = p;
  more_rows[8] = std::byte{6};  // 6 rows claimed, data for 5
  EXPECT_NE(decode_error(more_rows).find("expected"), std::string::npos) << decode_error(more_rows);
}

TEST(BatchCodecTest, RandomCorruptionNeverCrashes) {
  // Flip random bytes of a valid payload: decoding either succeeds or throws DataError.
  std::mt19937 rng(7);
  auto p = encoded_payload();
  for (int trial = 0; trial < 2000; ++trial) {
    auto q = p;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) q[rng() % q.size()] ^= static_cast<std::byte>(1 + rng() % 255);
    auto owner = std::make_shared<std::vector<std::byte>>(q);
    try {
      Batch b = decode_batch(owner, owner->data(), owner->size());
      for (const Column& c : b.columns()) {
        if (c.dtype() == DType::kString) {
          for (int64_t r = 0; r < c.rows(); ++r) (void)c.str(r);
        }
      }
    } catch (const DataError&) {
    }
  }
}

TEST(ColumnSpecTest, Parses) {
  ColumnSpec s = parse_column_spec(" image : uint8[32, 32,3] ");
  EXPECT_EQ(s.name, "image");
  EXPECT_EQ(s.dtype, DType::kUInt8);
  EXPECT_EQ(s.record_shape, (std::vector<int64_t>{32, 32, 3}));
  EXPECT_EQ(s.to_string(), "image: uint8[32,32,3]");
  EXPECT_THROW(parse_column_spec("x"), ConfigError);
  EXPECT_THROW(parse_column_spec("x:float16"), ConfigError);
  EXPECT_THROW(parse_column_spec("x:float32[0]"), ConfigError);
  EXPECT_THROW(parse_column_spec("x:string[2]"), ConfigError);
}

TEST(ColumnSpecTest, AShapeTooLargeForAnyRecordIsRefusedWithoutOverflow) {
  auto error_of = [](std::string_view text) -> std::string {
    try {
      parse_column_spec(text);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(error_of("x:float32[268435456]"), "accepted");  // kMaxRecordElements
  EXPECT_EQ(error_of("x:float32[16384,16384]"), "accepted");
  const std::string limit = " elements (the most a record may hold)";
  EXPECT_EQ(error_of("x:float32[268435457]"),
            "column \"x:float32[268435457]\": a record of more than 268435456" + limit);
  EXPECT_EQ(error_of("x:float32[16384,16385]"),
            "column \"x:float32[16384,16385]\": a record of more than 268435456" + limit);
  // Digits enough to overflow int64 (the parser once multiplied on regardless).
  EXPECT_NE(error_of("x:float32[99999999999999999999999]").find("a record of more than"),
            std::string::npos);
  EXPECT_NE(error_of("x:uint8[65536,65536,65536,65536]").find("a record of more than"),
            std::string::npos);
}

}  // namespace
}  // namespace tensair::dataflow
