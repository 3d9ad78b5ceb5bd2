// Data movement (the oracle and the host implementation): copies between the host and a
// backend's memory, strided row copies (KV-cache appends, picking last rows), row gathers by an
// index list (expert dispatch, the embedding lookup) and widening of a stored vector to f32.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>

namespace moe::kernels {

// dst[0, host.size()) = host. dst is in the backend's memory; for host backends a memcpy.
template <class T>
void upload(backend::reference, std::span<const T> host, View<T, 1> dst) {
  require(host.size() <= dst.extent(0) && (dst.extent(0) <= 1 || dst.stride(0) == 1), ErrorCode::kInvalidArgument,
          "upload: {} elements into a view of {}", host.size(), dst.extent(0));
  if (!host.empty()) std::memcpy(dst.data(), host.data(), host.size_bytes());
}

// host = src[0, host.size()).
template <class T>
void download(backend::reference, View<const T, 1> src, std::span<T> host) {
  require(host.size() <= src.extent(0) && (src.extent(0) <= 1 || src.stride(0) == 1), ErrorCode::kInvalidArgument,
          "download: {} elements from a view of {}", host.size(), src.extent(0));
  if (!host.empty()) std::memcpy(host.data(), src.data(), host.size_bytes());
}

// dst = src, both [n, d] (any row strides; unit inner stride). No overlap.
inline void copy_rows(backend::reference, View<const float, 2> src, View<float, 2> dst) {
  detail::check_same_shape(src, dst, "copy_rows", "src", "dst");
  for (index_t r = 0; r < src.extent(0); ++r) std::copy_n(&src(r, 0), src.extent(1), &dst(r, 0));
}

// dst[i, :] = src[rows[i], :]: src [m, d], rows [n] with every value in [0, m) or negative (the
// caller checks; this is not re-validated in the hot path), dst [n, d]. A negative row (a slot an
// expert budget dropped) gives a row of zeros.
inline void gather_rows(backend::reference, View<const float, 2> src, View<const std::int32_t, 1> rows,
                        View<float, 2> dst) {
  require(dst.extent(0) == rows.extent(0) && dst.extent(1) == src.extent(1), ErrorCode::kInvalidArgument,
          "gather_rows: src [{}, {}], {} rows, dst [{}, {}]", src.extent(0), src.extent(1), rows.extent(0),
          dst.extent(0), dst.extent(1));
  for (index_t i = 0; i < rows.extent(0); ++i) {
    if (rows[i] < 0) {
      std::fill_n(&dst(i, 0), dst.extent(1), 0.0f);
      continue;
    }
    std::copy_n(&src(static_cast<index_t>(rows[i]), 0), src.extent(1), &dst(i, 0));
  }
}

// dst[i] = src[idx[i]] for idx[i] in [0, src.extent(0)), else -1: per-slot values of a per-row
// table (each bucketed expert slot's LoRA adapter from its token's). idx and dst [n].
inline void gather_ids(backend::reference, View<const std::int32_t, 1> src, View<const std::int32_t, 1> idx,
                       View<std::int32_t, 1> dst) {
  require(dst.extent(0) == idx.extent(0), ErrorCode::kInvalidArgument, "gather_ids: {} indices, dst [{}]",
          idx.extent(0), dst.extent(0));
  for (index_t i = 0; i < idx.extent(0); ++i) {
    const std::int32_t r = idx[i];
    dst[i] = r >= 0 && static_cast<index_t>(r) < src.extent(0) ? src[static_cast<index_t>(r)] : -1;
  }
}

// The embedding lookup: out[t, :] = f32(table[tokens[t], :]). table [vocab, d] stored as W,
// tokens [n] ids in [0, vocab) (Model::forward checks them), out [n, d] f32.
template <class W>
void embed_rows(backend::reference, View<const W, 2> table, View<const std::int32_t, 1> tokens, View<float, 2> out) {
  require(out.extent(0) == tokens.extent(0) && out.extent(1) == table.extent(1), ErrorCode::kInvalidArgument,
          "embed_rows: table [{}, {}], {} tokens, out [{}, {}]", table.extent(0), table.extent(1), tokens.extent(0),
          out.extent(0), out.extent(1));
  for (index_t t = 0; t < tokens.extent(0); ++t) {
    const auto id = static_cast<index_t>(tokens[t]);
    for (index_t i = 0; i < table.extent(1); ++i) out(t, i) = FormatTraits<W>::decode(&table(id, 0), i);
  }
}

// dst = f32(src), both [n]: a stored vector (router correction bias, attention sinks) widened
// once per pass so the ops that read it take f32.
template <class W>
void to_f32(backend::reference, View<const W, 1> src, View<float, 1> dst) {
  require(src.extent(0) == dst.extent(0), ErrorCode::kInvalidArgument, "to_f32: {} elements into {}",
          src.extent(0), dst.extent(0));
  for (index_t i = 0; i < src.extent(0); ++i) dst[i] = to_float(src[i]);
}

}  // namespace moe::kernels
