// TensorView / Tensor: shapes, strides, slicing, aligned storage, checked access.
#include <moe/core/tensor.hpp>

#include <catch2/catch.hpp>

#include <cstdint>

TEST_CASE("contiguous views are row-major, outermost first", "[tensor]") {
  moe::Tensor<float, 3> t({2, 3, 5});
  REQUIRE(t.size() == 30);
  REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % moe::kTensorAlignment == 0);
  auto v = t.view();
  REQUIRE(v.stride(0) == 15);
  REQUIRE(v.stride(1) == 5);
  REQUIRE(v.stride(2) == 1);
  REQUIRE(v.is_contiguous());
  for (moe::index_t i = 0; i < 30; ++i) t.data()[i] = static_cast<float>(i);
  REQUIRE(v(1, 2, 4) == 29.0f);
  REQUIRE(v[1][2][4] == 29.0f);
  auto rows = v.slice(1, 2);
  REQUIRE(rows.extent(0) == 1);
  REQUIRE(rows(0, 0, 0) == 15.0f);
  auto flat = v.reshape<2>({6, 5});
  REQUIRE(flat(5, 4) == 29.0f);
  moe::TensorView<const float, 3> cv = v;
  REQUIRE(cv(0, 1, 0) == 5.0f);
}

TEST_CASE("bad indices and reshapes are typed errors", "[tensor]") {
  moe::Tensor<float, 2> t({4, 3});
  REQUIRE_THROWS_AS(t.view().at(4, 0), moe::Error);
  REQUIRE_THROWS_AS(t.view().slice(2, 5), moe::Error);
  REQUIRE_THROWS_AS(t.view().reshape<1>({11}), moe::Error);
  REQUIRE_NOTHROW(t.view().at(3, 2));
}

TEST_CASE("strided views are not contiguous", "[tensor]") {
  moe::Tensor<float, 2> t({4, 6});
  moe::TensorView<float, 2> every_other(t.data(), {4, 3}, {6, 2});
  REQUIRE_FALSE(every_other.is_contiguous());
  every_other(3, 2) = 7.0f;
  REQUIRE(t(3, 4) == 7.0f);
  REQUIRE_THROWS_AS(every_other.span(), moe::Error);
}

TEST_CASE("tensors copy deeply and start zeroed", "[tensor]") {
  moe::Tensor<float, 1> a({17});
  REQUIRE(a(16) == 0.0f);
  a(3) = 2.0f;
  moe::Tensor<float, 1> b = a;
  b(3) = 5.0f;
  REQUIRE(a(3) == 2.0f);
  REQUIRE(b(3) == 5.0f);
}
