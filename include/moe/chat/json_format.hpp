// The tojson filter as transformers defines it for chat templates: Python's
// json.dumps(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) with those
// four options, byte for byte: ", " and ": " between items (or "," and ": " when indented),
// floats as repr() writes them, non-ASCII kept unless ensure_ascii.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

#include "moe/chat/runtime.hpp"
#include "moe/chat/value.hpp"

namespace moe::chat {

struct JsonFormat {
  bool indented = false;  // indent given (even 0: Python then breaks lines without indenting)
  std::string indent;     // per level
  bool ensure_ascii = false;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};

namespace json_format_detail {

inline void append_hex4(std::string& out, unsigned v) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 15]);
}

inline void append_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (!ensure_ascii) {
        out.push_back(s[i++]);
        continue;
      }
      const char32_t cp = text::decode(s, i);
      if (cp >= 0x10000) {
        const char32_t v = cp - 0x10000;
        append_hex4(out, 0xD800 + static_cast<unsigned>(v >> 10));
        append_hex4(out, 0xDC00 + static_cast<unsigned>(v & 0x3FF));
      } else {
        append_hex4(out, static_cast<unsigned>(cp));
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          append_hex4(out, c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

inline void dump(Runtime& rt, std::string& out, const Value& v, const JsonFormat& f, std::size_t level) {
  Runtime::DepthGuard guard(rt);
  rt.check_string_size(out.size());
  auto newline = [&](std::size_t lvl) {
    out.push_back('\n');
    for (std::size_t i = 0; i < lvl; ++i) out += f.indent;
  };
  switch (v.kind()) {
    case Kind::kNone:
      out += "null";
      return;
    case Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Kind::kFloat: {
      const double d = v.as_float();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d < 0 ? "-Infinity" : "Infinity";
      } else {
        out += format_float(d);
      }
      return;
    }
    case Kind::kString:
      append_string(out, v.as_string(), f.ensure_ascii);
      return;
    case Kind::kList: {
      const List& items = v.as_list();
      rt.charge(1 + items.size());
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += f.item_separator;
        if (f.indented) newline(level + 1);
        dump(rt, out, items[i], f, level + 1);
      }
      if (f.indented) newline(level);
      out.push_back(']');
      return;
    }
    case Kind::kDict: {
      const auto& items = v.as_dict().items();
      rt.charge(1 + items.size());
      if (items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::size_t> order(items.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      if (f.sort_keys)
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return items[a].first < items[b].first; });
      out.push_back('{');
      for (std::size_t n = 0; n < order.size(); ++n) {
        if (n) out += f.item_separator;
        if (f.indented) newline(level + 1);
        append_string(out, items[order[n]].first, f.ensure_ascii);
        out += f.key_separator;
        dump(rt, out, items[order[n]].second, f, level + 1);
      }
      if (f.indented) newline(level);
      out.push_back('}');
      return;
    }
    default:
      // Python: TypeError("Object of type Undefined is not JSON serializable").
      rt.fail("Object of type {} is not JSON serializable{}", v.type_name(),
              v.is_undefined() ? " (" + v.undefined_hint() + ")" : std::string());
  }
}

}  // namespace json_format_detail

inline std::string to_json(Runtime& rt, const Value& v, const JsonFormat& format) {
  std::string out;
  json_format_detail::dump(rt, out, v, format, 0);
  rt.check_string_size(out.size());
  rt.charge_bytes(out.size());
  return out;
}

}  // namespace moe::chat
