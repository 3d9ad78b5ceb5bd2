// The layers x experts routing heatmap as a self-contained SVG: one row per MoE layer, one cell
// per expert coloured by its share of the layer's routed slots (a viridis-like scale with a
// legend; unused experts hatched grey), expert ids above, layer names on the left and each
// layer's activation rate and max/mean load on the right. Each cell carries a <title> tooltip.
#pragma once

#include "moe/runtime/expert_stats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>

namespace moe {

namespace heatmap_detail {

// Viridis at five stops (its published endpoint and quartile colours), interpolated in sRGB.
inline std::string colour(double v) {
  static constexpr std::array<std::array<int, 3>, 5> kStops{
      {{0x44, 0x01, 0x54}, {0x3b, 0x52, 0x8b}, {0x21, 0x91, 0x8c}, {0x5e, 0xc9, 0x62}, {0xfd, 0xe7, 0x25}}};
  v = std::clamp(std::isfinite(v) ? v : 0.0, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(v));
  const double f = v - i;
  int rgb[3];
  for (int c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround(kStops[i][c] + (kStops[i + 1][c] - kStops[i][c]) * f));
  }
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

inline std::string escape(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

}  // namespace heatmap_detail

// The SVG text of `s` (title: shown at the top, escaped).
inline std::string expert_heatmap_svg(const ExpertStats& s, std::string_view title = "Expert routing") {
  namespace h = heatmap_detail;
  const index_t E = std::max<index_t>(s.n_experts, 1);
  const index_t L = s.layers.size();
  const int cell_w = static_cast<int>(std::clamp<index_t>(720 / E, 3, 36));
  const int cell_h = L > 40 ? 12 : 22;
  const int left = 70, top = 70, right = 190;
  const int grid_w = static_cast<int>(E) * cell_w, grid_h = static_cast<int>(std::max<index_t>(L, 1)) * cell_h;
  const int legend_y = top + grid_h + 24;
  // Wide enough for the grid with its right-hand column, the legend and the title (~8.5 px per
  // character at 15 px bold).
  const int title_w = static_cast<int>(8.5 * static_cast<double>(title.size())) + 20;
  const int width = std::max({left + std::max(grid_w, 260) + right, left + 460, left + title_w});
  const int height = legend_y + 58;

  double max_share = 0.0;
  std::uint64_t routed = 0;
  for (const auto& l : s.layers) {
    routed += l.routed;
    for (const double v : l.share) max_share = std::max(max_share, v);
  }
  const double scale_top = max_share > 0 ? max_share : 1.0;

  std::string o;
  o += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n",
      width, height, width, height);
  o += "<defs><pattern id=\"unused\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
       "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#eeeeee\"/>"
       "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#bbbbbb\" stroke-width=\"2\"/></pattern>"
       "<linearGradient id=\"scale\">";
  for (int i = 0; i <= 8; ++i) o += fmt::format("<stop offset=\"{}%\" stop-color=\"{}\"/>", i * 12.5, h::colour(i / 8.0));
  o += "</linearGradient></defs>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += fmt::format("<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n", left, h::escape(title));
  o += fmt::format("<text x=\"{}\" y=\"40\" fill=\"#555\">{} MoE layers x {} experts, {} routed token slots; colour: "
                   "share of the layer's slots</text>\n",
                   left, L, s.n_experts, routed);
  // Expert ids above the columns (every one when they fit, else every 4th / 8th / 16th).
  const index_t step = cell_w >= 14 ? 1 : cell_w >= 7 ? 4 : cell_w >= 4 ? 8 : 16;
  for (index_t e = 0; e < s.n_experts; e += step) {
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{}</text>\n",
                     left + static_cast<int>(e) * cell_w + cell_w / 2, top - 6, e);
  }
  o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#333\">expert</text>\n", left - 48, top - 6);
  o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#333\" font-weight=\"bold\">active (rate), max/mean</text>\n",
                   left + grid_w + 8, top - 6);
  for (index_t r = 0; r < L; ++r) {
    const auto& l = s.layers[r];
    const int y = top + static_cast<int>(r) * cell_h;
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#333\">layer {}</text>\n", left - 6,
                     y + cell_h / 2 + 4, l.layer);
    for (index_t e = 0; e < s.n_experts; ++e) {
      const int x = left + static_cast<int>(e) * cell_w;
      const bool used = l.tokens[e] > 0;
      o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"white\" "
                       "stroke-width=\"{}\"><title>layer {} expert {}: {} tokens ({:.1f}%), mean weight {:.3f}</title>"
                       "</rect>\n",
                       x, y, cell_w, cell_h, used ? h::colour(l.share[e] / scale_top) : std::string("url(#unused)"),
                       cell_w >= 8 ? 1 : 0, l.layer, e, l.tokens[e], 100.0 * l.share[e], l.mean_weight[e]);
    }
    const char* health = l.activation_rate >= 0.6 && l.activation_rate <= 0.8 ? "#1a7f37" : "#333";
    o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">{}/{} ({:.0f}%), {:.2f}</text>\n", left + grid_w + 8,
                     y + cell_h / 2 + 4, health, l.active_experts, s.n_experts, 100.0 * l.activation_rate,
                     l.max_over_mean);
  }
  if (L == 0) {
    o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">no routed tokens yet</text>\n", left, top + 15);
  }
  // Legend: the colour scale from 0 to the largest share, and the unused-expert swatch.
  const int lw = 220;
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"12\" fill=\"url(#scale)\" stroke=\"#999\"/>\n", left,
                   legend_y, lw);
  for (int i = 0; i <= 4; ++i) {
    const int x = left + lw * i / 4;
    o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#666\"/>", x, legend_y + 12, x,
                     legend_y + 16);
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{:.1f}%</text>\n", x, legend_y + 28,
                     100.0 * scale_top * i / 4.0);
  }
  o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">share of a layer's routed slots (uniform = {:.1f}%)</text>\n",
                   left, legend_y + 44, 100.0 / static_cast<double>(E));
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"12\" fill=\"url(#unused)\" stroke=\"#999\"/>"
                   "<text x=\"{}\" y=\"{}\" fill=\"#333\">unused in this window</text>\n",
                   left + lw + 24, legend_y, left + lw + 42, legend_y + 10);
  o += "</svg>\n";
  return o;
}

}  // namespace moe
