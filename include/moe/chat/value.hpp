// Value: what a chat-template expression evaluates to. Python's types as jinja2 sees them
// (Undefined, None, bool, int, float, str, list/tuple, dict, namespace, callable), with Python's
// truthiness, equality, ordering, str() and repr(). Strings, lists and dicts are immutable and
// shared (copying a Value is cheap); a namespace is the one mutable, reference-typed value.
// Dicts keep insertion order, as Python's do, so tojson writes keys in the order they came.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "moe/chat/text.hpp"

namespace moe::chat {

class Value;
class Runtime;  // the evaluator's state a builtin may use (limits, errors, calling back)

using List = std::vector<Value>;

// Ordered string-keyed map (Python dict semantics: insertion order, last write wins).
class Dict {
 public:
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
  std::size_t size() const noexcept;  // defined after Value (nvcc instantiates the pair eagerly)
  const std::vector<std::pair<std::string, Value>>& items() const noexcept { return items_; }

 private:
  std::vector<std::pair<std::string, Value>> items_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// Call arguments as jinja2 passes them: positional, then keyword (in call order).
struct CallArgs {
  List positional;
  std::vector<std::pair<std::string, Value>> keyword;

  const Value* kwarg(std::string_view name) const;
};

struct Callable {
  std::string name;  // for messages: "macro 'render'", "raise_exception", ...
  std::function<Value(Runtime&, CallArgs&)> fn;
};

struct Undefined {
  std::shared_ptr<const std::string> hint;  // why: "'foo' is undefined", "'dict object' has no attribute 'x'"
};
struct None {};

struct ListData {
  List items;
  bool tuple = false;
  std::size_t depth = 1;       // 1 + the deepest element's depth
  bool has_namespace = false;  // a namespace anywhere inside (see Runtime::assign_attribute)
};
struct DictData {
  Dict dict;
  std::size_t depth = 1;
  bool has_namespace = false;
};

enum class Kind : std::uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

class Value {
 public:
  Value() : v_(Undefined{}) {}
  static Value undefined(std::string hint = {}) {
    Value v;
    if (!hint.empty()) v.v_ = Undefined{std::make_shared<const std::string>(std::move(hint))};
    return v;
  }
  static Value none() { return Value(None{}); }
  static Value boolean(bool b) { return Value(b); }
  static Value integer(std::int64_t i) { return Value(i); }
  static Value number(double d) { return Value(d); }
  static Value string(std::string s) { return Value(std::make_shared<const std::string>(std::move(s))); }
  static Value list(List items, bool tuple = false) {
    auto d = std::make_shared<ListData>();
    for (const Value& x : items) {
      d->depth = std::max(d->depth, x.depth() + 1);
      d->has_namespace = d->has_namespace || x.has_namespace();
    }
    d->items = std::move(items);
    d->tuple = tuple;
    return Value(std::shared_ptr<const ListData>(std::move(d)));
  }
  static Value dict(Dict dict) {
    auto d = std::make_shared<DictData>();
    for (const auto& [k, x] : dict.items()) {
      d->depth = std::max(d->depth, x.depth() + 1);
      d->has_namespace = d->has_namespace || x.has_namespace();
    }
    d->dict = std::move(dict);
    return Value(std::shared_ptr<const DictData>(std::move(d)));
  }
  static Value namespace_(Dict attrs) {
    auto d = std::make_shared<DictData>();
    d->dict = std::move(attrs);
    Value v;
    v.v_ = Namespace{std::move(d)};
    return v;
  }
  static Value callable(std::string name, std::function<Value(Runtime&, CallArgs&)> fn) {
    return Value(std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)}));
  }

  Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const noexcept { return kind() == Kind::kUndefined; }
  bool is_none() const noexcept { return kind() == Kind::kNone; }
  bool is_bool() const noexcept { return kind() == Kind::kBool; }
  bool is_int() const noexcept { return kind() == Kind::kInt; }
  bool is_float() const noexcept { return kind() == Kind::kFloat; }
  bool is_number() const noexcept { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const noexcept { return kind() == Kind::kString; }
  bool is_list() const noexcept { return kind() == Kind::kList; }
  bool is_dict() const noexcept { return kind() == Kind::kDict; }
  bool is_namespace() const noexcept { return kind() == Kind::kNamespace; }
  bool is_callable() const noexcept { return kind() == Kind::kCallable; }

  bool as_bool() const { return std::get<bool>(v_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  // int/bool/float as a double (callers check is_number first).
  double to_double() const {
    if (is_float()) return as_float();
    if (is_bool()) return as_bool() ? 1.0 : 0.0;
    return static_cast<double>(as_int());
  }
  std::int64_t to_int() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }
  const std::string& as_string() const { return *std::get<std::shared_ptr<const std::string>>(v_); }
  const ListData& list_data() const { return *std::get<std::shared_ptr<const ListData>>(v_); }
  const List& as_list() const { return list_data().items; }
  bool is_tuple() const { return is_list() && list_data().tuple; }
  const Dict& as_dict() const {
    if (is_namespace()) return std::get<Namespace>(v_).data->dict;
    return std::get<std::shared_ptr<const DictData>>(v_)->dict;
  }
  Dict& namespace_attrs() const { return std::get<Namespace>(v_).data->dict; }
  const DictData* namespace_identity() const { return std::get<Namespace>(v_).data.get(); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(v_); }
  std::string undefined_hint() const {
    const auto& h = std::get<Undefined>(v_).hint;
    return h ? *h : std::string("value is undefined");
  }

  std::size_t depth() const noexcept {
    if (kind() == Kind::kList) return std::get<std::shared_ptr<const ListData>>(v_)->depth;
    if (kind() == Kind::kDict) return std::get<std::shared_ptr<const DictData>>(v_)->depth;
    return 0;
  }
  bool has_namespace() const noexcept {
    if (kind() == Kind::kNamespace) return true;
    if (kind() == Kind::kList) return std::get<std::shared_ptr<const ListData>>(v_)->has_namespace;
    if (kind() == Kind::kDict) return std::get<std::shared_ptr<const DictData>>(v_)->has_namespace;
    return false;
  }

  // Python's truth value (jinja2's Undefined is false, a namespace is always true).
  bool truthy() const {
    switch (kind()) {
      case Kind::kUndefined:
      case Kind::kNone:
        return false;
      case Kind::kBool:
        return as_bool();
      case Kind::kInt:
        return as_int() != 0;
      case Kind::kFloat:
        return as_float() != 0.0;
      case Kind::kString:
        return !as_string().empty();
      case Kind::kList:
        return !as_list().empty();
      case Kind::kDict:
        return as_dict().size() != 0;
      case Kind::kNamespace:
      case Kind::kCallable:
        return true;
    }
    return false;
  }

  // Python's type name, for error messages ("str", "list", "dict", "NoneType", ...).
  std::string_view type_name() const noexcept {
    switch (kind()) {
      case Kind::kUndefined:
        return "Undefined";
      case Kind::kNone:
        return "NoneType";
      case Kind::kBool:
        return "bool";
      case Kind::kInt:
        return "int";
      case Kind::kFloat:
        return "float";
      case Kind::kString:
        return "str";
      case Kind::kList:
        return std::get<std::shared_ptr<const ListData>>(v_)->tuple ? "tuple" : "list";
      case Kind::kDict:
        return "dict";
      case Kind::kNamespace:
        return "Namespace";
      case Kind::kCallable:
        return "function";
    }
    return "object";
  }

 private:
  struct Namespace {
    std::shared_ptr<DictData> data;
  };
  template <class T>
  explicit Value(T x) : v_(std::move(x)) {}

  std::variant<Undefined, None, bool, std::int64_t, double, std::shared_ptr<const std::string>,
               std::shared_ptr<const ListData>, std::shared_ptr<const DictData>, Namespace,
               std::shared_ptr<const Callable>>
      v_;
};

inline std::size_t Dict::size() const noexcept { return items_.size(); }

inline const Value* Dict::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

inline void Dict::set(std::string key, Value value) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    items_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(key, items_.size());
  items_.emplace_back(std::move(key), std::move(value));
}

inline const Value* CallArgs::kwarg(std::string_view name) const {
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

// ---- numbers as Python prints them ----

// Python's repr(float): the shortest text that reads back as the same double, with ".0" for
// integral values, "inf"/"nan" for the specials (fmt's shortest format uses the same switch to
// exponent notation, below 1e-4 and from 1e16, and the same "1e-05" exponent style).
inline std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// ---- equality and ordering (Python semantics) ----

inline bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() == b.to_double();
    return a.to_int() == b.to_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.as_string() == b.as_string();
    case Kind::kList: {
      const List &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Kind::kDict: {
      const Dict &x = a.as_dict(), &y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.items()) {
        const Value* w = y.find(k);
        if (w == nullptr || !equals(v, *w)) return false;
      }
      return true;
    }
    case Kind::kNamespace:
      return a.namespace_identity() == b.namespace_identity();
    case Kind::kCallable:
      return &a.as_callable() == &b.as_callable();
    default:
      return false;
  }
}

// Three-way comparison for <, >, sort, min, max: numbers with numbers, strings with strings (code
// point order, which is byte order in UTF-8), lists lexicographically. nullopt: Python would
// raise TypeError ('<' not supported between instances of ...).
inline std::optional<int> compare(const Value& a, const Value& b, bool case_sensitive = true) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.to_double(), y = b.to_double();
      if (std::isnan(x) || std::isnan(y)) return 0;  // Python: every comparison with nan is false
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const std::int64_t x = a.to_int(), y = b.to_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    if (case_sensitive) {
      const int c = a.as_string().compare(b.as_string());
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    const int c = text::to_lower(a.as_string()).compare(text::to_lower(b.as_string()));
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    const List &x = a.as_list(), &y = b.as_list();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return compare(x[i], y[i], case_sensitive);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  return std::nullopt;
}

// ---- str() and repr() ----

std::string repr(const Value& v);

// What {{ v }} prints: Python's str(v), with jinja2's Undefined printing as nothing.
inline std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.as_int());
    case Kind::kFloat:
      return format_float(v.as_float());
    case Kind::kString:
      return v.as_string();
    default:
      return repr(v);
  }
}

inline std::string repr(const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      return text::repr(v.as_string());
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kList: {
      const bool tuple = v.is_tuple();
      std::string out(1, tuple ? '(' : '[');
      const List& items = v.as_list();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += repr(items[i]);
      }
      if (tuple && items.size() == 1) out += ",";
      out += tuple ? ')' : ']';
      return out;
    }
    case Kind::kDict:
    case Kind::kNamespace: {
      std::string out = v.is_namespace() ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : v.as_dict().items()) {
        if (!first) out += ", ";
        first = false;
        out += text::repr(k);
        out += ": ";
        out += repr(x);
      }
      out += v.is_namespace() ? "}>" : "}";
      return out;
    }
    case Kind::kCallable:
      return "<" + v.as_callable().name + ">";
    default:
      return to_str(v);
  }
}

// ---- from JSON (the caller's messages, tools and extra variables) ----

// Converts nlohmann::json or nlohmann::ordered_json (keys keep the order of the ordered_json, or
// the sorted order of plain json). Integers beyond int64 become floats, as nothing in a template
// needs them exactly. The JSON parsers of this library cap nesting at 64, so the recursion here
// is bounded; a caller-built document deeper than max_depth is refused by the caller of this.
template <class Json>
Value from_json(const Json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.template get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.template get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(INT64_MAX)) return Value::integer(static_cast<std::int64_t>(u));
      return Value::number(static_cast<double>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::number(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value::string(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.set(it.key(), from_json(it.value()));
      return Value::dict(std::move(d));
    }
    default:
      return Value::none();  // binary / discarded: not produced by a JSON text
  }
}

// Nesting depth of a JSON value (1 for a scalar), computed without recursion past `cap`.
template <class Json>
std::size_t json_depth(const Json& j, std::size_t cap) {
  if (!j.is_structured()) return 1;
  if (cap <= 1) return 2;
  std::size_t deepest = 0;
  for (const auto& x : j) deepest = std::max(deepest, json_depth(x, cap - 1));
  return deepest + 1;
}

}  // namespace moe::chat
