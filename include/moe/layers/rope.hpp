// Rotary position embeddings: the inverse-frequency tables of transformers' rope types
// (default, linear, dynamic NTK, YaRN, llama3) and the per-token cos/sin rows the rope kernel
// consumes.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <string_view>
#include <vector>

namespace moe::layers {

enum class RopeType : std::uint8_t { kDefault, kLinear, kDynamic, kYarn, kLlama3 };

constexpr std::string_view to_string(RopeType t) noexcept {
  switch (t) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kDynamic: return "dynamic";
    case RopeType::kYarn: return "yarn";
    case RopeType::kLlama3: return "llama3";
  }
  return "?";
}

// Everything transformers' `rope_parameters` (or the older `rope_scaling` + `rope_theta`) says,
// already standardised: missing optional keys hold transformers' defaults.
struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  index_t rotary_dim = 0;                 // int(head_dim * partial_rotary_factor); even
  double factor = 1.0;                    // linear / dynamic / yarn / llama3
  double original_max_position_embeddings = 0;  // yarn / llama3
  double max_position_embeddings = 0;     // the model's: yarn's factor fallback, dynamic's threshold
  // YaRN
  double attention_factor = -1;           // < 0: derived from factor / mscale / mscale_all_dim
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0;                      // 0: absent
  double mscale_all_dim = 0;              // 0: absent
  bool truncate = true;                   // GPT-OSS sets false: keep the fractional correction range
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama.cpp's per-frequency divisors (a GGUF's rope_freqs.weight, ggml_rope_ext's freq_factors):
  // applied after the type's table, inv_freq[i] /= freq_factors[i]. Empty: none. A GGUF stores
  // llama3 rope this way (gguf_arch::llama3_rope_factors).
  std::vector<float> freq_factors;  // [rotary_dim / 2]
};

// YaRN's magnitude correction 0.1·mscale·ln(scale) + 1 (1 for scale <= 1), as in the YaRN paper
// and transformers' `get_mscale` / DeepSeek's `yarn_get_mscale`.
inline double yarn_mscale(double scale, double mscale = 1.0) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// The inverse frequencies (rotary_dim/2 values) and the factor transformers multiplies cos and
// sin with (`attention_scaling`). Numerics follow transformers: the exponent i/dim and the power
// are f32 tensors there, so we round each intermediate to f32 the same way.
struct RopeFrequencies {
  std::vector<float> inv_freq;   // [rotary_dim / 2]
  float attention_scaling = 1.0f;
};

inline RopeFrequencies compute_rope_frequencies(const RopeConfig& c) {
  require(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0, ErrorCode::kConfig,
          "rotary dimension must be a positive even number, got {}", c.rotary_dim);
  require(c.theta > 0 && std::isfinite(c.theta), ErrorCode::kConfig, "rope_theta must be positive, got {}",
          c.theta);
  const index_t half = c.rotary_dim / 2;
  const auto dim_f = static_cast<float>(c.rotary_dim);
  const auto base_f = static_cast<float>(c.theta);
  // base ** (arange(0, dim, 2) / dim) in f32
  std::vector<float> pos_freqs(half);
  for (index_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / dim_f;
    pos_freqs[i] = static_cast<float>(std::pow(static_cast<double>(base_f), static_cast<double>(exponent)));
  }
  RopeFrequencies out;
  out.inv_freq.resize(half);
  for (index_t i = 0; i < half; ++i) out.inv_freq[i] = 1.0f / pos_freqs[i];

  switch (c.type) {
    case RopeType::kDefault: break;
    case RopeType::kDynamic:
      // Up to max_position_embeddings dynamic NTK is the default table; longer sequences get
      // their frequencies from dynamic_ntk_inv_freq.
      require(c.factor >= 1 && std::isfinite(c.factor) && c.max_position_embeddings >= 1, ErrorCode::kConfig,
              "dynamic rope needs factor >= 1 and max_position_embeddings >= 1, got {} and {}", c.factor,
              c.max_position_embeddings);
      break;
    case RopeType::kLinear: {
      require(c.factor > 0, ErrorCode::kConfig, "linear rope factor must be positive, got {}", c.factor);
      const auto f = static_cast<float>(c.factor);
      for (auto& v : out.inv_freq) v /= f;
      break;
    }
    case RopeType::kLlama3: {
      // Llama 3.1: low frequencies are divided by `factor`, high ones kept, the band between
      // interpolated smoothly (wavelengths compared against the original context length).
      require(c.factor > 0 && c.low_freq_factor > 0 && c.high_freq_factor > c.low_freq_factor &&
                  c.original_max_position_embeddings > 0,
              ErrorCode::kConfig,
              "llama3 rope needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
              "original_max_position_embeddings > 0 (got {}, {}, {}, {})",
              c.factor, c.low_freq_factor, c.high_freq_factor, c.original_max_position_embeddings);
      const double old_ctx = c.original_max_position_embeddings;
      const double low_wavelen = old_ctx / c.low_freq_factor;
      const double high_wavelen = old_ctx / c.high_freq_factor;
      const auto factor = static_cast<float>(c.factor);
      for (auto& v : out.inv_freq) {
        const float wavelen = static_cast<float>(2.0 * std::numbers::pi) / v;
        float scaled = wavelen > low_wavelen ? v / factor : v;
        const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        if (medium) {
          const float smooth = static_cast<float>((old_ctx / wavelen - c.low_freq_factor) /
                                                  (c.high_freq_factor - c.low_freq_factor));
          scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
        }
        v = scaled;
      }
      break;
    }
    case RopeType::kYarn: {
      // YaRN (Peng et al. 2023), as transformers' `_compute_yarn_parameters`: blend interpolated
      // (1/(factor·base^(2i/d))) and extrapolated frequencies with a linear ramp between the
      // dimensions where beta_fast and beta_slow rotations fit in the original context.
      double factor = c.factor;
      require(c.original_max_position_embeddings > 0, ErrorCode::kConfig,
              "yarn rope needs original_max_position_embeddings > 0, got {}",
              c.original_max_position_embeddings);
      if (!(factor > 0)) factor = c.max_position_embeddings / c.original_max_position_embeddings;
      require(factor > 0 && std::isfinite(factor), ErrorCode::kConfig, "yarn rope factor must be positive, got {}",
              factor);
      if (c.attention_factor >= 0) {
        out.attention_scaling = static_cast<float>(c.attention_factor);
      } else if (c.mscale != 0 && c.mscale_all_dim != 0) {
        out.attention_scaling = static_cast<float>(yarn_mscale(factor, c.mscale) / yarn_mscale(factor, c.mscale_all_dim));
      } else {
        out.attention_scaling = static_cast<float>(yarn_mscale(factor));
      }
      const double beta_fast = c.beta_fast != 0 ? c.beta_fast : 32.0;
      const double beta_slow = c.beta_slow != 0 ? c.beta_slow : 1.0;
      const double d = static_cast<double>(c.rotary_dim);
      auto correction_dim = [&](double rotations) {
        return d * std::log(c.original_max_position_embeddings / (rotations * 2.0 * std::numbers::pi)) /
               (2.0 * std::log(c.theta));
      };
      double low = correction_dim(beta_fast);
      double high = correction_dim(beta_slow);
      if (c.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, d - 1.0);
      if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp
      const auto f = static_cast<float>(factor);
      for (index_t i = 0; i < half; ++i) {
        const float ramp_raw = static_cast<float>((static_cast<float>(i) - low) / (high - low));
        const float ramp = std::clamp(ramp_raw, 0.0f, 1.0f);
        const float extrapolation_weight = 1.0f - ramp;
        const float inv_extrapolation = 1.0f / pos_freqs[i];
        const float inv_interpolation = 1.0f / (f * pos_freqs[i]);
        out.inv_freq[i] = inv_interpolation * (1.0f - extrapolation_weight) +
                          inv_extrapolation * extrapolation_weight;
      }
      break;
    }
  }
  if (!c.freq_factors.empty()) {
    require(static_cast<index_t>(c.freq_factors.size()) == half, ErrorCode::kConfig,
            "rope frequency factors: {} values for rotary dimension {} (expected {})", c.freq_factors.size(),
            c.rotary_dim, half);
    for (index_t i = 0; i < half; ++i) {
      const float f = c.freq_factors[i];
      require(std::isfinite(f) && f > 0, ErrorCode::kConfig, "rope frequency factor {} is {}; must be positive", i, f);
      out.inv_freq[i] /= f;
    }
  }
  return out;
}

// Dynamic NTK scaling for a sequence of `seq_len` tokens (transformers' `_compute_dynamic_ntk_
// parameters`): beyond max_position_embeddings the base grows to
// base · (factor·seq_len/max_pos − (factor − 1))^(d/(d−2)); the intermediates are f32 there.
// transformers recomputes this per forward pass from the largest position in it; we do it per
// sequence of a batch (so a sequence decodes the same alone or batched). `out` holds rotary_dim/2.
inline bool dynamic_ntk_inv_freq(const RopeConfig& c, std::int64_t seq_len, std::span<float> out) {
  if (c.type != RopeType::kDynamic || static_cast<double>(seq_len) <= c.max_position_embeddings) return false;
  const auto dim = static_cast<float>(c.rotary_dim);
  const float ratio = static_cast<float>(c.factor) * static_cast<float>(seq_len) /
                          static_cast<float>(c.max_position_embeddings) -
                      static_cast<float>(c.factor - 1.0);
  const float base = static_cast<float>(c.theta) *
                     static_cast<float>(std::pow(static_cast<double>(ratio), static_cast<double>(dim / (dim - 2.0f))));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const float exponent = static_cast<float>(2 * i) / dim;
    out[i] = 1.0f / static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
  }
  return true;
}

// Fills cos/sin rows for the given positions: cos[t][i] = cos(pos_t · inv_freq[i]) · scaling.
// The angle is an f32 product as in transformers (inv_freq @ position_ids in f32); cos and sin
// are evaluated in double and rounded once. cos, sin: [positions.size(), inv_freq.size()].
// `inv_freq` overrides f.inv_freq when not empty (dynamic NTK).
inline void fill_rope_rows(const RopeFrequencies& f, std::span<const std::int64_t> positions,
                           View<float, 2> cos, View<float, 2> sin, std::span<const float> inv_freq = {}) {
  if (inv_freq.empty()) inv_freq = f.inv_freq;
  const index_t half = inv_freq.size();
  for (index_t t = 0; t < positions.size(); ++t) {
    const auto p = static_cast<float>(positions[t]);
    float* c = &cos(t, 0);
    float* s = &sin(t, 0);
    for (index_t i = 0; i < half; ++i) {
      const float angle = inv_freq[i] * p;
      c[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * f.attention_scaling;
      s[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * f.attention_scaling;
    }
  }
}

}  // namespace moe::layers
