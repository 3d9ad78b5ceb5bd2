// Evaluator: runs a parsed chat template over a set of variables and returns the rendered text,
// with jinja2's semantics (Python operators on Python values, jinja2's scoping: a for loop and a
// macro call open a scope, if/set/filter blocks do not; namespace() objects are the one way to
// carry a value out of a loop) and transformers' sandbox (no method may modify a value).
// Every step is metered against TemplateLimits; every failure is a TemplateError carrying the
// line and column of the expression or statement that failed.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "moe/chat/ast.hpp"
#include "moe/chat/filters.hpp"
#include "moe/chat/globals.hpp"
#include "moe/chat/methods.hpp"
#include "moe/chat/runtime.hpp"
#include "moe/chat/tests.hpp"

namespace moe::chat {

// ---- Runtime members that need the builtins ----

inline bool Runtime::has_test(std::string_view name) const { return builtin_tests().count(name) != 0; }
inline bool Runtime::has_filter(std::string_view name) const { return builtin_filters().count(name) != 0; }

inline Value Runtime::apply_filter(std::string_view name, const Value& operand, CallArgs& args) {
  const auto& filters = builtin_filters();
  const auto it = filters.find(name);
  if (it == filters.end()) fail("no filter named '{}'", name);
  charge(1);
  return it->second(*this, operand, args);
}

inline bool Runtime::apply_test(std::string_view name, const Value& operand, CallArgs& args) {
  const auto& tests = builtin_tests();
  const auto it = tests.find(name);
  if (it == tests.end()) fail("no test named '{}'", name);
  charge(1);
  return it->second(*this, operand, args);
}

inline Value Runtime::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) fail("{}", callee.undefined_hint());
  if (!callee.is_callable()) fail("'{}' object is not callable", callee.type_name());
  charge(1 + args.positional.size() + args.keyword.size());
  return callee.as_callable().fn(*this, args);
}

inline List Runtime::iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kList:
      charge(1 + v.as_list().size());
      return v.as_list();
    case Kind::kDict: {
      List keys;
      keys.reserve(v.as_dict().size());
      for (const auto& [k, x] : v.as_dict().items()) keys.push_back(Value::string(k));
      charge(1 + keys.size());
      return keys;
    }
    case Kind::kString: {
      const std::string& s = v.as_string();
      List chars;
      for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = text::sequence_length(static_cast<unsigned char>(s[i]));
        chars.push_back(Value::string(s.substr(i, len)));
        i += len;
      }
      charge(1 + chars.size());
      return chars;
    }
    case Kind::kUndefined:
      return {};
    default:
      fail("'{}' object is not iterable", v.type_name());
  }
}

inline Value Runtime::get_attr(const Value& object, std::string_view name) {
  switch (object.kind()) {
    case Kind::kUndefined:
      fail("{}", object.undefined_hint());
    case Kind::kNamespace: {
      if (const Value* v = object.as_dict().find(name)) return *v;
      return Value::undefined(fmt::format("'Namespace object' has no attribute '{}'", name));
    }
    case Kind::kDict: {
      // Python attribute first (jinja2's getattr): d.items is the method, d.content the key.
      if (methods_detail::is_dict_method(name) || methods_detail::is_mutating_method(name))
        return bound_method(object, name);
      if (const Value* v = object.as_dict().find(name)) return *v;
      return Value::undefined(fmt::format("'dict object' has no attribute '{}'", name));
    }
    default:
      return bound_method(object, name);
  }
}

inline Value Runtime::get_item(const Value& object, const Value& key) {
  auto missing = [&] {
    return Value::undefined(
        fmt::format("'{}' has no attribute {}",
                    object.is_none() ? std::string("None") : std::string(object.type_name()) + " object", repr(key)));
  };
  switch (object.kind()) {
    case Kind::kUndefined:
      fail("{}", object.undefined_hint());
    case Kind::kDict:
    case Kind::kNamespace: {
      if (key.is_string()) {
        if (const Value* v = object.as_dict().find(key.as_string())) return *v;
        if (object.is_dict()) {
          Value m = bound_method(object, key.as_string());
          if (!m.is_undefined()) return m;
        }
        return Value::undefined(fmt::format("'{} object' has no attribute '{}'", object.type_name(), key.as_string()));
      }
      return missing();
    }
    case Kind::kList:
    case Kind::kString: {
      if (key.is_int() || key.is_bool()) {
        std::int64_t i = key.to_int();
        if (object.is_list()) {
          const auto n = static_cast<std::int64_t>(object.as_list().size());
          if (i < 0) i += n;
          if (i < 0 || i >= n) return missing();
          return object.as_list()[static_cast<std::size_t>(i)];
        }
        const std::string& s = object.as_string();
        const auto offsets = text::code_point_offsets(s);
        const auto n = static_cast<std::int64_t>(offsets.size() - 1);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return missing();
        const auto at = static_cast<std::size_t>(i);
        return Value::string(s.substr(offsets[at], offsets[at + 1] - offsets[at]));
      }
      if (key.is_string()) return bound_method(object, key.as_string());
      return missing();
    }
    default:
      return missing();
  }
}

// Python's `item in container`.
inline bool contains(Runtime& rt, const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kString:
      if (item.is_undefined()) rt.fail("{}", item.undefined_hint());
      if (!item.is_string()) rt.fail("'in <string>' requires string as left operand, not {}", item.type_name());
      rt.charge_bytes(container.as_string().size());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Kind::kList:
      rt.charge(1 + container.as_list().size());
      for (const Value& x : container.as_list())
        if (equals(x, item)) return true;
      return false;
    case Kind::kDict:
      return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    case Kind::kUndefined:
      return false;
    default:
      rt.fail("argument of type '{}' is not iterable", container.type_name());
  }
}

class Evaluator {
 public:
  explicit Evaluator(Runtime& rt) : rt_(rt) {}

  std::string render(const Program& program, std::shared_ptr<Scope> root) {
    std::string out;
    exec_body(program.body, root, out);
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using ScopePtr = std::shared_ptr<Scope>;

  // ---- statements ----

  Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const StmtPtr& s : body) {
      const Flow f = exec(*s, scope, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  void emit(std::string& out, std::string_view s) {
    if (out.size() + s.size() > rt_.limits().max_output_bytes)
      rt_.fail("the rendered text would exceed the limit of {} bytes", rt_.limits().max_output_bytes);
    out += s;
    rt_.charge_bytes(s.size());
  }

  Flow exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
    Runtime::DepthGuard guard(rt_);
    rt_.set_where(s.where);
    rt_.charge(1);  // every statement run is a step: a long loop body costs what it does
    switch (s.kind) {
      case StmtKind::kOutput:
        emit(out, s.text);
        return Flow::kNormal;
      case StmtKind::kPrint: {
        const Value v = eval(*s.expr, scope);
        emit(out, v.is_string() ? v.as_string() : to_str(v));
        return Flow::kNormal;
      }
      case StmtKind::kIf:
        return exec_body(eval(*s.expr, scope).truthy() ? s.body : s.else_body, scope, out);
      case StmtKind::kFor:
        return exec_for(s, scope, out);
      case StmtKind::kSet: {
        Value v = eval(*s.expr, scope);
        rt_.set_where(s.where);
        assign(*s.target, std::move(v), scope);
        return Flow::kNormal;
      }
      case StmtKind::kSetBlock: {
        std::string buf;
        exec_body(s.body, scope, buf);
        Value v = apply_filter_chain(s.filters, Value::string(std::move(buf)), scope);
        rt_.set_where(s.where);
        assign(*s.target, std::move(v), scope);
        return Flow::kNormal;
      }
      case StmtKind::kFilterBlock: {
        std::string buf;
        exec_body(s.body, scope, buf);
        const Value v = apply_filter_chain(s.filters, Value::string(std::move(buf)), scope);
        emit(out, to_str(v));
        return Flow::kNormal;
      }
      case StmtKind::kMacro: {
        scope->set(s.name, make_macro(s, scope, "macro '" + s.name + "'"));
        return Flow::kNormal;
      }
      case StmtKind::kCallBlock: {
        Value caller = make_macro(s, scope, "caller");
        const Expr& call = *s.expr;
        Value callee = eval(*call.args[0], scope);
        CallArgs args = eval_args(call, scope);
        args.keyword.emplace_back("caller", std::move(caller));
        rt_.set_where(call.where);
        const Value v = rt_.call(callee, args);
        emit(out, to_str(v));
        return Flow::kNormal;
      }
      case StmtKind::kWith: {
        auto inner = std::make_shared<Scope>(scope);
        for (const auto& [name, e] : s.assignments) inner->set(name, eval(*e, scope));
        return exec_body(s.body, inner, out);
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kBlock:
        return exec_body(s.body, scope, out);
    }
    return Flow::kNormal;
  }

  Value apply_filter_chain(const std::vector<ExprPtr>& filters, Value v, const ScopePtr& scope) {
    for (const ExprPtr& f : filters) {
      CallArgs args = eval_args(*f, scope);
      rt_.set_where(f->where);
      v = rt_.apply_filter(f->name, v, args);
    }
    return v;
  }

  void bind(const Expr& target, const Value& v, Scope& scope) {
    if (target.kind == ExprKind::kName) {
      scope.set(target.name, v);
      return;
    }
    // kTuple: unpack a list/tuple (or a string, or a dict's keys) of the same length.
    const List items = v.is_list() ? v.as_list() : rt_.iterate(v);
    if (items.size() != target.args.size())
      rt_.fail("{} values to unpack (expected {}, got {})",
               items.size() > target.args.size() ? "too many" : "not enough", target.args.size(), items.size());
    for (std::size_t i = 0; i < items.size(); ++i) bind(*target.args[i], items[i], scope);
  }

  void assign(const Expr& target, Value v, const ScopePtr& scope) {
    if (target.kind != ExprKind::kGetAttr) return bind(target, v, *scope);
    const std::string& ns_name = target.args[0]->name;
    const Value* ns = scope->lookup(ns_name);
    if (ns == nullptr || !ns->is_namespace())
      rt_.fail("cannot assign attribute '{}' on '{}': it is not a namespace() object", target.name, ns_name);
    // A namespace inside a namespace could form a cycle (ns.a = ns), which reference counting
    // would never free and printing would never finish; real templates store plain values.
    if (v.has_namespace()) rt_.fail("a namespace attribute cannot hold a namespace ('{}.{}')", ns_name, target.name);
    ns->namespace_attrs().set(target.name, std::move(v));
  }

  Flow exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
    const Value iterable = eval(*s.expr, scope);
    rt_.set_where(s.where);
    List all = rt_.iterate(iterable);
    auto loop_scope = std::make_shared<Scope>(scope);
    List items;
    if (s.condition) {
      for (Value& item : all) {
        rt_.charge(1);
        bind(*s.target, item, *loop_scope);
        if (eval(*s.condition, loop_scope).truthy()) items.push_back(std::move(item));
      }
    } else {
      items = std::move(all);
    }
    const std::size_t n = items.size();
    // The loop object costs a dict per iteration: build it only for bodies that can see it.
    auto [it, fresh] = uses_loop_.try_emplace(&s, false);
    if (fresh) it->second = mentions(s.body, "loop") || mentions(s.else_body, "loop");
    const bool with_loop = it->second;
    for (std::size_t i = 0; i < n; ++i) {
      rt_.charge(1);
      rt_.set_where(s.where);
      if (with_loop) loop_scope->set("loop", make_loop(items, i));
      bind(*s.target, items[i], *loop_scope);
      const Flow f = exec_body(s.body, loop_scope, out);
      if (f == Flow::kBreak) break;
    }
    if (n == 0) return exec_body(s.else_body, loop_scope, out);
    return Flow::kNormal;
  }

  Value make_loop(const List& items, std::size_t i) {
    const auto n = static_cast<std::int64_t>(items.size());
    const auto k = static_cast<std::int64_t>(i);
    Dict loop;
    loop.set("index", Value::integer(k + 1));
    loop.set("index0", Value::integer(k));
    loop.set("revindex", Value::integer(n - k));
    loop.set("revindex0", Value::integer(n - k - 1));
    loop.set("first", Value::boolean(k == 0));
    loop.set("last", Value::boolean(k == n - 1));
    loop.set("length", Value::integer(n));
    loop.set("depth", Value::integer(1));
    loop.set("depth0", Value::integer(0));
    loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
    loop.set("nextitem", i + 1 < items.size() ? items[i + 1] : Value::undefined("there is no next item"));
    loop.set("cycle", Value::callable("loop.cycle", [i](Runtime& rt, CallArgs& a) {
               if (a.positional.empty()) rt.fail("no items for cycling given");
               return a.positional[i % a.positional.size()];
             }));
    return Value::dict(std::move(loop));
  }

  // A macro (or a call block's caller) as a callable value. It holds its defining scope weakly:
  // a scope holds the macro, so a strong reference would be a cycle; a macro called after its
  // scope ended (only possible by smuggling it out through a namespace) is an error.
  Value make_macro(const Stmt& s, const ScopePtr& scope, std::string display) {
    const bool varargs = uses_name(s.body, "varargs");
    const bool kwargs = uses_name(s.body, "kwargs");
    std::weak_ptr<Scope> closure = scope;
    const Stmt* stmt = &s;
    return Value::callable(display, [this, stmt, closure, varargs, kwargs, display](Runtime& rt, CallArgs& args) {
      Runtime::CallGuard call_guard(rt);
      ScopePtr parent = closure.lock();
      if (!parent) rt.fail("{} was called after the scope it was defined in ended", display);
      auto local = std::make_shared<Scope>(parent);
      const auto& params = stmt->params;
      if (args.positional.size() > params.size() && !varargs)
        rt.fail("{} takes not more than {} argument(s)", display, params.size());
      std::vector<bool> given(params.size(), false);
      for (std::size_t i = 0; i < params.size() && i < args.positional.size(); ++i) {
        local->set(params[i].name, args.positional[i]);
        given[i] = true;
      }
      Dict extra_kwargs;
      for (auto& [key, value] : args.keyword) {
        bool matched = false;
        for (std::size_t i = 0; i < params.size(); ++i) {
          if (params[i].name != key) continue;
          if (given[i]) rt.fail("{} got multiple values for argument '{}'", display, key);
          local->set(key, value);
          given[i] = matched = true;
        }
        if (matched) continue;
        if (key == "caller") {
          local->set("caller", value);
        } else if (kwargs) {
          extra_kwargs.set(key, value);
        } else {
          rt.fail("{} takes no keyword argument '{}'", display, key);
        }
      }
      for (std::size_t i = 0; i < params.size(); ++i) {
        if (given[i]) continue;
        local->set(params[i].name, params[i].default_value ? eval(*params[i].default_value, local)
                                                           : Value::undefined(fmt::format(
                                                                 "parameter '{}' was not provided", params[i].name)));
      }
      if (varargs) {
        List rest;
        for (std::size_t i = params.size(); i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
        local->set("varargs", rt.make_list(std::move(rest), /*tuple=*/true));
      }
      if (kwargs) local->set("kwargs", rt.make_dict(std::move(extra_kwargs)));
      std::string buf;
      exec_body(stmt->body, local, buf);
      return Value::string(std::move(buf));
    });
  }

  // Whether `name` appears anywhere in `body`, nested macros included.
  static bool mentions(const Body& body, std::string_view name) {
    for (const StmtPtr& s : body) {
      for (const Expr* e : {s->expr.get(), s->condition.get(), s->target.get()})
        if (e && uses_name(*e, name)) return true;
      for (const auto& f : s->filters)
        if (uses_name(*f, name)) return true;
      for (const auto& [n, e] : s->assignments)
        if (uses_name(*e, name)) return true;
      for (const auto& p : s->params)
        if (p.default_value && uses_name(*p.default_value, name)) return true;
      if (mentions(s->body, name) || mentions(s->else_body, name)) return true;
    }
    return false;
  }

  static bool uses_name(const Expr& e, std::string_view name) {
    if (e.kind == ExprKind::kName && e.name == name) return true;
    for (const auto& a : e.args)
      if (a && uses_name(*a, name)) return true;
    for (const auto& kv : e.kwargs)
      if (uses_name(*kv.second, name)) return true;
    return (e.dyn_args && uses_name(*e.dyn_args, name)) || (e.dyn_kwargs && uses_name(*e.dyn_kwargs, name));
  }
  static bool uses_name(const Body& body, std::string_view name) {
    for (const StmtPtr& s : body) {
      for (const Expr* e : {s->expr.get(), s->condition.get()})
        if (e && uses_name(*e, name)) return true;
      for (const auto& f : s->filters)
        if (uses_name(*f, name)) return true;
      for (const auto& [n, e] : s->assignments)
        if (uses_name(*e, name)) return true;
      // A nested macro has its own varargs/kwargs.
      if (s->kind != StmtKind::kMacro && (uses_name(s->body, name) || uses_name(s->else_body, name))) return true;
    }
    return false;
  }

  // ---- expressions ----

  CallArgs eval_args(const Expr& e, const ScopePtr& scope) {
    CallArgs args;
    const std::size_t first =
        e.kind == ExprKind::kCall || e.kind == ExprKind::kFilter || e.kind == ExprKind::kTest ? 1 : 0;
    for (std::size_t i = first; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i], scope));
    if (e.dyn_args) {
      const Value v = eval(*e.dyn_args, scope);
      for (const Value& x : rt_.iterate(v)) args.positional.push_back(x);
    }
    for (const auto& [k, x] : e.kwargs) args.keyword.emplace_back(k, eval(*x, scope));
    if (e.dyn_kwargs) {
      const Value v = eval(*e.dyn_kwargs, scope);
      rt_.set_where(e.where);
      if (!v.is_dict()) rt_.fail("argument after ** must be a mapping, not {}", v.type_name());
      for (const auto& [k, x] : v.as_dict().items()) {
        for (const auto& kv : args.keyword)
          if (kv.first == k) rt_.fail("got multiple values for keyword argument '{}'", k);
        args.keyword.emplace_back(k, x);
      }
    }
    rt_.check_items(args.positional.size() + args.keyword.size());
    return args;
  }

  Value eval(const Expr& e, const ScopePtr& scope) {
    Runtime::DepthGuard guard(rt_);
    rt_.set_where(e.where);
    rt_.charge(1);
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.literal;
      case ExprKind::kName: {
        if (const Value* v = scope->lookup(e.name)) return *v;
        return Value::undefined(fmt::format("'{}' is undefined", e.name));
      }
      case ExprKind::kList:
      case ExprKind::kTuple: {
        List items;
        items.reserve(e.args.size());
        for (const auto& a : e.args) items.push_back(eval(*a, scope));
        rt_.set_where(e.where);
        return rt_.make_list(std::move(items), e.kind == ExprKind::kTuple);
      }
      case ExprKind::kDict: {
        Dict d;
        for (std::size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i], scope);
          Value v = eval(*e.args[i + 1], scope);
          rt_.set_where(e.args[i]->where);
          if (!k.is_string()) rt_.fail("dict keys must be strings in chat templates, got {}", k.type_name());
          d.set(k.as_string(), std::move(v));
        }
        rt_.set_where(e.where);
        return rt_.make_dict(std::move(d));
      }
      case ExprKind::kGetAttr: {
        const Value obj = eval(*e.args[0], scope);
        rt_.set_where(e.where);
        return rt_.get_attr(obj, e.name);
      }
      case ExprKind::kGetItem: {
        const Value obj = eval(*e.args[0], scope);
        const Value key = eval(*e.args[1], scope);
        rt_.set_where(e.where);
        return rt_.get_item(obj, key);
      }
      case ExprKind::kSlice:
        return eval_slice(e, scope);
      case ExprKind::kCall: {
        const Value callee = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, scope);
        rt_.set_where(e.where);
        return rt_.call(callee, args);
      }
      case ExprKind::kFilter: {
        const Value operand = e.args[0] ? eval(*e.args[0], scope) : Value::undefined();
        CallArgs args = eval_args(e, scope);
        rt_.set_where(e.where);
        return rt_.apply_filter(e.name, operand, args);
      }
      case ExprKind::kTest: {
        const Value operand = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, scope);
        rt_.set_where(e.where);
        const bool r = rt_.apply_test(e.name, operand, args);
        return Value::boolean(e.negated ? !r : r);
      }
      case ExprKind::kNot:
        return Value::boolean(!eval(*e.args[0], scope).truthy());
      case ExprKind::kNeg:
      case ExprKind::kPos: {
        const Value v = eval(*e.args[0], scope);
        rt_.set_where(e.where);
        if (v.is_undefined()) rt_.fail("{}", v.undefined_hint());
        if (!v.is_number())
          rt_.fail("bad operand type for unary {}: '{}'", e.kind == ExprKind::kNeg ? '-' : '+', v.type_name());
        if (e.kind == ExprKind::kPos) return v.is_bool() ? Value::integer(v.to_int()) : v;
        if (v.is_float()) return Value::number(-v.as_float());
        if (v.to_int() == INT64_MIN) rt_.fail("integer overflow");
        return Value::integer(-v.to_int());
      }
      case ExprKind::kBinary: {
        const Value a = eval(*e.args[0], scope);
        const Value b = eval(*e.args[1], scope);
        rt_.set_where(e.where);
        return binary(e.name, a, b);
      }
      case ExprKind::kConcat: {
        std::string out;
        for (const auto& a : e.args) {
          const Value v = eval(*a, scope);
          out += v.is_string() ? v.as_string() : to_str(v);
          rt_.check_string_size(out.size());
        }
        return rt_.make_string(std::move(out));
      }
      case ExprKind::kCompare: {
        Value left = eval(*e.args[0], scope);
        for (std::size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], scope);
          rt_.set_where(e.where);
          if (!compare_op(e.ops[i], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case ExprKind::kAnd: {
        Value a = eval(*e.args[0], scope);
        return a.truthy() ? eval(*e.args[1], scope) : a;
      }
      case ExprKind::kOr: {
        Value a = eval(*e.args[0], scope);
        return a.truthy() ? a : eval(*e.args[1], scope);
      }
      case ExprKind::kCond: {
        if (eval(*e.args[0], scope).truthy()) return eval(*e.args[1], scope);
        if (e.args[2]) return eval(*e.args[2], scope);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
      }
    }
    return Value::undefined();
  }

  bool compare_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(rt_, b, a);
    if (op == "notin") return !contains(rt_, b, a);
    if (a.is_undefined()) rt_.fail("{}", a.undefined_hint());
    if (b.is_undefined()) rt_.fail("{}", b.undefined_hint());
    const auto c = compare(a, b);
    if (!c) rt_.fail("'{}' not supported between instances of '{}' and '{}'", op, a.type_name(), b.type_name());
    if (op == "<") return *c < 0;
    if (op == "<=") return *c <= 0;
    if (op == ">") return *c > 0;
    return *c >= 0;
  }

  [[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
    rt_.fail("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
  }

  Value repeat(const Value& seq, std::int64_t n) {
    if (n <= 0) return seq.is_string() ? Value::string("") : rt_.make_list({}, seq.is_tuple());
    if (seq.is_string()) {
      const std::string& s = seq.as_string();
      if (!s.empty() && static_cast<std::uint64_t>(n) > rt_.limits().max_output_bytes / s.size())
        rt_.fail("a string of {} x {} bytes would exceed the limit of {} bytes", n, s.size(),
                 rt_.limits().max_output_bytes);
      std::string out;
      out.reserve(s.size() * static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) out += s;
      return rt_.make_string(std::move(out));
    }
    const List& items = seq.as_list();
    if (!items.empty() && static_cast<std::uint64_t>(n) > rt_.limits().max_items / items.size())
      rt_.fail("a list of {} x {} items would exceed the limit of {}", n, items.size(), rt_.limits().max_items);
    List out;
    for (std::int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
    return rt_.make_list(std::move(out), seq.is_tuple());
  }

  Value binary(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) rt_.fail("{}", a.undefined_hint());
    if (b.is_undefined()) rt_.fail("{}", b.undefined_hint());
    const bool numbers = a.is_number() && b.is_number();
    const bool floats = numbers && (a.is_float() || b.is_float());
    if (op == "+") {
      if (numbers) {
        if (floats) return Value::number(a.to_double() + b.to_double());
        std::int64_t r = 0;
        if (__builtin_add_overflow(a.to_int(), b.to_int(), &r)) rt_.fail("integer overflow in +");
        return Value::integer(r);
      }
      if (a.is_string() && b.is_string()) {
        rt_.check_string_size(a.as_string().size() + b.as_string().size());
        return rt_.make_string(a.as_string() + b.as_string());
      }
      if (a.is_list() && b.is_list()) {
        List out = a.as_list();
        rt_.check_items(out.size() + b.as_list().size());
        out.insert(out.end(), b.as_list().begin(), b.as_list().end());
        return rt_.make_list(std::move(out), a.is_tuple());
      }
      if (a.is_string()) rt_.fail("can only concatenate str (not \"{}\") to str", b.type_name());
      unsupported(op, a, b);
    }
    if (op == "*") {
      if (numbers) {
        if (floats) return Value::number(a.to_double() * b.to_double());
        std::int64_t r = 0;
        if (__builtin_mul_overflow(a.to_int(), b.to_int(), &r)) rt_.fail("integer overflow in *");
        return Value::integer(r);
      }
      if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.to_int());
      if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.to_int());
      unsupported(op, a, b);
    }
    if (!numbers) {
      if (op == "%" && a.is_string()) return rt_.make_string(filters_detail::percent_format(rt_, a.as_string(), b));
      unsupported(op, a, b);
    }
    if (op == "-") {
      if (floats) return Value::number(a.to_double() - b.to_double());
      std::int64_t r = 0;
      if (__builtin_sub_overflow(a.to_int(), b.to_int(), &r)) rt_.fail("integer overflow in -");
      return Value::integer(r);
    }
    if (op == "/") {
      if (b.to_double() == 0.0) rt_.fail("division by zero");
      return Value::number(a.to_double() / b.to_double());
    }
    if (op == "//" || op == "%") {
      if (floats) {
        const double x = a.to_double(), y = b.to_double();
        if (y == 0.0) rt_.fail("float floor division or modulo by zero");
        const double q = std::floor(x / y);
        if (op == "//") return Value::number(q);
        double m = std::fmod(x, y);
        if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
        return Value::number(m);
      }
      const std::int64_t x = a.to_int(), y = b.to_int();
      if (y == 0) rt_.fail("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        if (op == "%") return Value::integer(0);
        rt_.fail("integer overflow in //");
      }
      std::int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value::integer(op == "//" ? q : m);
    }
    if (op == "**") {
      if (!floats && b.to_int() >= 0) {
        std::int64_t base = a.to_int(), exp = b.to_int(), r = 1;
        while (exp > 0) {
          if ((exp & 1) && __builtin_mul_overflow(r, base, &r)) rt_.fail("integer overflow in **");
          exp >>= 1;
          if (exp > 0 && __builtin_mul_overflow(base, base, &base)) rt_.fail("integer overflow in **");
        }
        return Value::integer(r);
      }
      if (a.to_double() == 0.0 && b.to_double() < 0) rt_.fail("0.0 cannot be raised to a negative power");
      return Value::number(std::pow(a.to_double(), b.to_double()));
    }
    rt_.fail("unknown operator '{}'", op);
  }

  // Python slicing of a list, tuple or string (code points); Undefined raises, other types give
  // Undefined as jinja2's getitem does.
  Value eval_slice(const Expr& e, const ScopePtr& scope) {
    const Value obj = eval(*e.args[0], scope);
    std::optional<std::int64_t> bounds[3];
    for (int i = 0; i < 3; ++i) {
      if (!e.args[i + 1]) continue;
      const Value v = eval(*e.args[i + 1], scope);
      rt_.set_where(e.args[i + 1]->where);
      if (v.is_none()) continue;
      if (!v.is_int() && !v.is_bool()) rt_.fail("slice indices must be integers or None, not {}", v.type_name());
      bounds[i] = v.to_int();
    }
    rt_.set_where(e.where);
    if (obj.is_undefined()) rt_.fail("{}", obj.undefined_hint());
    if (!obj.is_list() && !obj.is_string())
      return Value::undefined(fmt::format("'{}' object is not subscriptable", obj.type_name()));
    const std::int64_t step = bounds[2].value_or(1);
    if (step == 0) rt_.fail("slice step cannot be zero");
    std::vector<std::size_t> offsets;
    std::int64_t n = 0;
    if (obj.is_list()) {
      n = static_cast<std::int64_t>(obj.as_list().size());
    } else {
      offsets = text::code_point_offsets(obj.as_string());
      n = static_cast<std::int64_t>(offsets.size() - 1);
    }
    // CPython's PySlice_AdjustIndices.
    auto adjust = [&](std::optional<std::int64_t> v, std::int64_t dflt_pos, std::int64_t dflt_neg) {
      if (!v) return step > 0 ? dflt_pos : dflt_neg;
      std::int64_t x = *v;
      if (x < 0) {
        x += n;
        if (x < 0) x = step < 0 ? -1 : 0;
      } else if (x >= n) {
        x = step < 0 ? n - 1 : n;
      }
      return x;
    };
    const std::int64_t start = adjust(bounds[0], 0, n - 1);
    const std::int64_t stop = adjust(bounds[1], n, -1);
    std::vector<std::int64_t> picks;
    if (step > 0) {
      for (std::int64_t i = start; i < stop; i += step) picks.push_back(i);
    } else {
      for (std::int64_t i = start; i > stop; i += step) picks.push_back(i);
    }
    rt_.charge(1 + picks.size());
    if (obj.is_list()) {
      List out;
      out.reserve(picks.size());
      for (std::int64_t i : picks) out.push_back(obj.as_list()[static_cast<std::size_t>(i)]);
      return rt_.make_list(std::move(out), obj.is_tuple());
    }
    const std::string& s = obj.as_string();
    std::string out;
    for (std::int64_t i : picks) {
      const auto k = static_cast<std::size_t>(i);
      out.append(s, offsets[k], offsets[k + 1] - offsets[k]);
    }
    return rt_.make_string(std::move(out));
  }

  Runtime& rt_;
  std::map<const Stmt*, bool> uses_loop_;
};

}  // namespace moe::chat
