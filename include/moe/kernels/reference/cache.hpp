// The KV-cache ops of a whole forward pass: append every sequence's new keys and values to its
// cache, and attend every query to its own sequence's cache, each in one op over all sequences
// of the pass (a batch of 128 decoding sequences is one launch on a device, not 128).
//
// A pass describes its sequences in a table of CacheSlots that lives in the backend's memory
// (staged with the token ids): slot i's tokens are rows [row0, row0 + n) of the pass and go to its
// cache at positions start, start + 1, ...; token_slot[t] names the slot of row t. Kernels read
// positions and cache addresses from the table, never from host arguments, so a device pass whose
// shapes repeat (decode) can be captured once and replayed (kernels/cuda/graph.cuh).
//
// A cache stores layer l's keys at data + capacity · offset as [capacity, key_width] rows and its
// values right after them as [capacity, value_width] (layers/kv_cache.hpp); CacheLayer says where
// layer l is. An MLA layer stores its latent as the "keys" and its rope key as the "values"; a
// sparse-attention (DSA) layer adds its indexer keys as [capacity, index_width] after them.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/copy.hpp"

#include <cstdint>

namespace moe::kernels {

// One sequence of a pass (plain data: host and device code read it).
struct CacheSlot {
  float* data = nullptr;      // the cache's storage, in the backend's memory
  std::int64_t capacity = 0;  // rows per layer
  std::int64_t start = 0;     // tokens stored before this pass
  std::int32_t row0 = 0;      // first row of the slot in the pass
  std::int32_t n = 0;         // rows of the slot
  float* state = nullptr;     // the cache's fixed per-sequence states (DeltaNet layers), or null
};

// Where one layer lives in every cache of the pass (all caches of a pass share the layer shapes).
struct CacheLayer {
  index_t offset = 0;  // floats per cached token before this layer's keys
  index_t key_width = 0;
  index_t value_width = 0;
  index_t state_offset = 0;  // floats before this layer's fixed state in the cache's state region
  index_t state_width = 0;   // floats of that state (0: the layer keeps per-token keys / values only)
  index_t index_width = 0;   // floats per token of a sparse-attention indexer key, after the values (DSA)
};

// The sequences of a pass as every cache op takes them, in the backend's memory space S.
template <class S>
struct PassSlots {
  TensorView<const CacheSlot, 1, S> slots;       // [sequences]
  TensorView<const std::int32_t, 1, S> token_slot;  // [tokens]: the slot of each row
  index_t max_keys = 0;                          // the longest visible context of any row (host-known)
};

namespace detail {

inline View<float, 2> cache_keys(const CacheSlot& s, const CacheLayer& l) noexcept {
  return View<float, 2>(s.data + s.capacity * l.offset, {static_cast<index_t>(s.capacity), l.key_width});
}
inline View<float, 2> cache_values(const CacheSlot& s, const CacheLayer& l) noexcept {
  return View<float, 2>(s.data + s.capacity * (l.offset + l.key_width),
                        {static_cast<index_t>(s.capacity), l.value_width});
}

inline View<float, 2> cache_index_keys(const CacheSlot& s, const CacheLayer& l) noexcept {
  return View<float, 2>(s.data + s.capacity * (l.offset + l.key_width + l.value_width),
                        {static_cast<index_t>(s.capacity), l.index_width});
}

// The checks every backend makes (extents only: the table itself was built by the model, which
// validated each sequence's room before the pass).
template <class S>
void check_cache_rows(const PassSlots<S>& p, const CacheLayer& l, index_t n, index_t k_width, index_t v_width,
                      const char* op) {
  require(p.token_slot.extent(0) == n && k_width == l.key_width && v_width == l.value_width,
          ErrorCode::kInvalidArgument, "{}: {} rows of width {} / {} for {} token slots and a layer of {} / {}", op, n,
          k_width, v_width, p.token_slot.extent(0), l.key_width, l.value_width);
}

// Every row's slot exists and holds the row, and the slots tile the rows [0, n) (a host table).
inline void check_token_slots(const PassSlots<host_memory>& p, index_t n, const char* op) {
  require(p.token_slot.extent(0) == n, ErrorCode::kInvalidArgument, "{}: {} rows for {} token slots", op, n,
          p.token_slot.extent(0));
  for (index_t t = 0; t < n; ++t) {
    const auto i = p.token_slot[t];
    require(i >= 0 && static_cast<index_t>(i) < p.slots.extent(0), ErrorCode::kInvalidArgument,
            "{}: row {} names slot {} of {}", op, t, i, p.slots.extent(0));
    const CacheSlot& s = p.slots[static_cast<index_t>(i)];
    require(s.row0 >= 0 && s.n > 0 && static_cast<index_t>(s.row0) <= t && t < static_cast<index_t>(s.row0) + s.n,
            ErrorCode::kInvalidArgument, "{}: row {} is outside its slot {} (rows {} + {})", op, t, i, s.row0, s.n);
    require(s.data != nullptr && s.start >= 0 && s.n <= s.capacity - s.start, ErrorCode::kInvalidArgument,
            "{}: slot {} adds {} rows to a cache holding {} of {}", op, i, s.n, s.start, s.capacity);
  }
}

// Calls f(slot, rows [row0, row0 + n)) for every slot of a host table.
template <class F>
void for_each_slot(const PassSlots<host_memory>& p, F&& f) {
  for (index_t i = 0; i < p.slots.extent(0); ++i) {
    const CacheSlot& s = p.slots[i];
    f(s, static_cast<index_t>(s.row0), static_cast<index_t>(s.row0) + static_cast<index_t>(s.n));
  }
}

}  // namespace detail

// Appends row t of k [n, key_width] and v [n, value_width] to the cache of token_slot[t], at
// position start + (t - row0), for layer l.
inline void append_cache(backend::reference be, const PassSlots<host_memory>& p, const CacheLayer& l,
                         View<const float, 2> k, View<const float, 2> v) {
  detail::check_cache_rows(p, l, k.extent(0), k.extent(1), v.extent(1), "append_cache");
  require(v.extent(0) == k.extent(0), ErrorCode::kInvalidArgument, "append_cache: {} key rows, {} value rows",
          k.extent(0), v.extent(0));
  detail::check_token_slots(p, k.extent(0), "append_cache");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    const auto start = static_cast<index_t>(s.start);
    copy_rows(be, k.slice(r0, r1), detail::cache_keys(s, l).slice(start, start + (r1 - r0)));
    copy_rows(be, v.slice(r0, r1), detail::cache_values(s, l).slice(start, start + (r1 - r0)));
  });
}

// Attention of every row to its own sequence's cache of layer l (its keys and values appended):
// q [n, n_heads·head_dim], sinks [n_heads] or [0], out [n, n_heads·v_head_dim].
inline void cached_attention(backend::reference be, const AttentionShape& a, const PassSlots<host_memory>& p,
                             const CacheLayer& l, View<const float, 2> q, View<const float, 1> sinks,
                             View<float, 2> out) {
  detail::check_token_slots(p, q.extent(0), "cached_attention");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    attention(be, a, q.slice(r0, r1), detail::cache_keys(s, l), detail::cache_values(s, l),
              static_cast<index_t>(s.start), sinks, out.slice(r0, r1));
  });
}

// Latent attention (MLA, absorbed form) of every row to its sequence's latent cache of layer l:
// q [n, n_heads·(nope+rope)], q_latent and out_latent [n, n_heads·rank].
inline void cached_mla_attention(backend::reference be, const MlaShape& m, const PassSlots<host_memory>& p,
                                 const CacheLayer& l, View<const float, 2> q, View<const float, 2> q_latent,
                                 View<float, 2> out_latent) {
  detail::check_token_slots(p, q.extent(0), "cached_mla_attention");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    mla_attention(be, m, q.slice(r0, r1), q_latent.slice(r0, r1), detail::cache_keys(s, l),
                  detail::cache_values(s, l), static_cast<index_t>(s.start), out_latent.slice(r0, r1));
  });
}

}  // namespace moe::kernels
