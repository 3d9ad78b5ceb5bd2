// jinja2's built-in tests (jinja2/tests.py), for `x is name` and select/reject/selectattr: the
// Python type checks (number includes bool, mapping is a dict only, Undefined counts as iterable,
// as in Python), comparisons, odd/even/divisibleby, sameas, in, lower/upper, defined/undefined.
#pragma once

#include <map>
#include <string_view>

#include "moe/chat/runtime.hpp"

namespace moe::chat {

using TestFn = bool (*)(Runtime&, const Value&, CallArgs&);

namespace tests_detail {

inline const Value& one_arg(Runtime& rt, CallArgs& args, std::string_view test, std::string_view param) {
  ArgReader r(rt, args, test);
  const Value* v = r.get(0, param);
  r.finish(1);
  if (v == nullptr) rt.fail("test '{}' needs an argument ({})", test, param);
  return *v;
}
inline void no_arg(Runtime& rt, CallArgs& args, std::string_view test) {
  if (!args.positional.empty() || !args.keyword.empty()) rt.fail("test '{}' takes no arguments", test);
}

inline std::int64_t int_operand(Runtime& rt, const Value& v, std::string_view test) {
  if (v.is_int() || v.is_bool()) return v.to_int();
  if (v.is_undefined()) rt.fail("{}", v.undefined_hint());
  rt.fail("test '{}' needs an integer, got {}", test, v.type_name());
}

inline bool compare_test(Runtime& rt, const Value& a, const Value& b, std::string_view op) {
  if (op == "eq") return equals(a, b);
  if (op == "ne") return !equals(a, b);
  const auto c = compare(a, b);
  if (!c) rt.fail("'{}' not supported between instances of '{}' and '{}'", op, a.type_name(), b.type_name());
  if (op == "lt") return *c < 0;
  if (op == "le") return *c <= 0;
  if (op == "gt") return *c > 0;
  return *c >= 0;
}

// Python's str.islower()/isupper(): at least one cased character and none of the other case.
inline bool cased_as(const std::string& s, bool lower) {
  bool cased = false;
  for (char c : s) {
    if (lower ? text::is_ascii_upper(static_cast<unsigned char>(c))
              : text::is_ascii_lower(static_cast<unsigned char>(c)))
      return false;
    if (text::is_ascii_alpha(static_cast<unsigned char>(c))) cased = true;
  }
  return cased;
}

}  // namespace tests_detail

bool contains(Runtime& rt, const Value& container, const Value& item);  // evaluator.hpp

inline const std::map<std::string_view, TestFn, std::less<>>& builtin_tests() {
  using namespace tests_detail;
  static const std::map<std::string_view, TestFn, std::less<>> tests = [] {
    std::map<std::string_view, TestFn, std::less<>> t;
    t["defined"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "defined");
      return !v.is_undefined();
    };
    t["undefined"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "undefined");
      return v.is_undefined();
    };
    t["none"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "none");
      return v.is_none();
    };
    t["boolean"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "boolean");
      return v.is_bool();
    };
    t["true"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "true");
      return v.is_bool() && v.as_bool();
    };
    t["false"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "false");
      return v.is_bool() && !v.as_bool();
    };
    t["integer"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "integer");
      return v.is_int();
    };
    t["float"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "float");
      return v.is_float();
    };
    t["number"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "number");
      return v.is_number();
    };
    t["string"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "string");
      return v.is_string();
    };
    t["mapping"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "mapping");
      return v.is_dict();
    };
    t["iterable"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "iterable");
      return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
    };
    t["sequence"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "sequence");
      return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
    };
    t["callable"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "callable");
      return v.is_callable();
    };
    t["escaped"] = [](Runtime& rt, const Value&, CallArgs& a) {
      no_arg(rt, a, "escaped");
      return false;
    };
    t["odd"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "odd");
      return (int_operand(rt, v, "odd") & 1) != 0;
    };
    t["even"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "even");
      return (int_operand(rt, v, "even") & 1) == 0;
    };
    t["divisibleby"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      const Value& n = one_arg(rt, a, "divisibleby", "num");
      const std::int64_t x = int_operand(rt, v, "divisibleby"), d = int_operand(rt, n, "divisibleby");
      if (d == 0) rt.fail("integer division or modulo by zero (divisibleby 0)");
      return d == -1 || x % d == 0;
    };
    t["lower"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "lower");
      return tests_detail::cased_as(to_str(v), true);
    };
    t["upper"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "upper");
      return tests_detail::cased_as(to_str(v), false);
    };
    t["sameas"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      const Value& o = one_arg(rt, a, "sameas", "other");
      if (v.kind() != o.kind()) return false;
      if (v.is_none() || v.is_undefined()) return true;
      if (v.is_bool()) return v.as_bool() == o.as_bool();
      if (v.is_int()) return v.as_int() == o.as_int();  // CPython caches small ints; close enough
      if (v.is_string()) return &v.as_string() == &o.as_string();
      if (v.is_list()) return &v.as_list() == &o.as_list();
      if (v.is_dict() || v.is_namespace()) return &v.as_dict() == &o.as_dict();
      return equals(v, o);
    };
    t["in"] = [](Runtime& rt, const Value& v, CallArgs& a) { return contains(rt, one_arg(rt, a, "in", "seq"), v); };
    t["filter"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "filter");
      return v.is_string() && rt.has_filter(v.as_string());
    };
    t["test"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      no_arg(rt, a, "test");
      return v.is_string() && rt.has_test(v.as_string());
    };
    t["eq"] = t["equalto"] = t["=="] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return compare_test(rt, v, one_arg(rt, a, "eq", "other"), "eq");
    };
    t["ne"] = t["!="] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return compare_test(rt, v, one_arg(rt, a, "ne", "other"), "ne");
    };
    t["lt"] = t["lessthan"] = t["<"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return compare_test(rt, v, one_arg(rt, a, "lt", "other"), "lt");
    };
    t["le"] = t["<="] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return compare_test(rt, v, one_arg(rt, a, "le", "other"), "le");
    };
    t["gt"] = t["greaterthan"] = t[">"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return compare_test(rt, v, one_arg(rt, a, "gt", "other"), "gt");
    };
    t["ge"] = t[">="] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return compare_test(rt, v, one_arg(rt, a, "ge", "other"), "ge");
    };
    return t;
  }();
  return tests;
}

}  // namespace moe::chat
