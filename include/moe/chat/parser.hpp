// Parser of the chat-template language: tokens into a Program, with jinja2's grammar and operator
// precedence (jinja2/parser.py): conditional < or < and < not < comparisons (chained, in, not in)
// < + - < ~ < * / // % < ** < unary - + < postfix (.attr [item] [a:b:c] (call)) < filters and
// tests. Statements: if/elif/else, for (with "if" filter and else), set (names, tuples, namespace
// attributes, blocks), macro, call, filter, with, break/continue, and the generation markers.
#pragma once

#include <charconv>
#include <initializer_list>
#include <string_view>

#include "moe/chat/ast.hpp"
#include "moe/chat/lexer.hpp"

namespace moe::chat {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const TemplateLimits& limits) : tokens_(std::move(tokens)), limits_(limits) {}

  Program parse() {
    Program program;
    program.body = subparse({});
    return program;
  }

 private:
  // ---- token stream ----
  const Token& cur() const { return tokens_[pos_]; }
  const Token& look(std::size_t ahead = 1) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool is_op(std::string_view op) const { return cur().type == TokenType::kOperator && cur().value == op; }
  bool is_name(std::string_view n) const { return cur().type == TokenType::kName && cur().value == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kText:
        return "template data";
      case TokenType::kVarBegin:
        return "'{{'";
      case TokenType::kVarEnd:
        return "'}}'";
      case TokenType::kBlockBegin:
        return "'{%'";
      case TokenType::kBlockEnd:
        return "'%}'";
      case TokenType::kName:
        return "'" + t.value + "'";
      case TokenType::kString:
        return "a string";
      case TokenType::kInteger:
      case TokenType::kFloat:
        return "number " + t.value;
      case TokenType::kOperator:
        return "'" + t.value + "'";
      case TokenType::kEnd:
        return "end of template";
    }
    return "token";
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) syntax_error(cur().where, "expected '{}', got {}", op, describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != TokenType::kName) syntax_error(cur().where, "expected a name, got {}", describe(cur()));
    return next().value;
  }
  void expect(TokenType type, std::string_view what) {
    if (cur().type != type) syntax_error(cur().where, "expected {}, got {}", what, describe(cur()));
    next();
  }
  void expect_block_end() { expect(TokenType::kBlockEnd, "'%}'"); }

  // Nesting guard: every recursive parse step holds one.
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > p.limits_.max_nesting)
        syntax_error(p.cur().where, "template nests deeper than the limit of {}", p.limits_.max_nesting);
    }
    ~Nest() { --p.depth_; }
  };

  static ExprPtr make(ExprKind k, SourceLocation w) { return std::make_unique<Expr>(k, w); }

  // Records a finished node's depth and refuses trees deeper than max_nesting. Left-deep chains
  // (a + b + c ..., x.a.b.c ..., x | f | g ...) are built by loops, not recursion, so this (not
  // the Nest guard) is what bounds them, and with them the recursion of evaluating and freeing
  // a tree.
  ExprPtr sealed(ExprPtr e) const {
    std::uint32_t d = 0;
    for (const auto& a : e->args)
      if (a) d = std::max(d, a->depth);
    for (const auto& kv : e->kwargs) d = std::max(d, kv.second->depth);
    if (e->dyn_args) d = std::max(d, e->dyn_args->depth);
    if (e->dyn_kwargs) d = std::max(d, e->dyn_kwargs->depth);
    e->depth = d + 1;
    if (e->depth > limits_.max_nesting)
      syntax_error(e->where, "expression nests deeper than the limit of {}", limits_.max_nesting);
    return e;
  }

  // ---- statements ----

  // Parses until a block tag whose name is in `end`; then the current token is that name (the
  // "{%" consumed) and end_found_ names it. At the end of the template with `end` non-empty:
  // a syntax error naming what was expected.
  Body subparse(std::initializer_list<std::string_view> end) {
    Nest nest(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case TokenType::kText: {
          auto s = std::make_unique<Stmt>(StmtKind::kOutput, t.where);
          s->text = t.value;
          body.push_back(std::move(s));
          next();
          break;
        }
        case TokenType::kVarBegin: {
          auto s = std::make_unique<Stmt>(StmtKind::kPrint, t.where);
          next();
          s->expr = parse_tuple();
          expect(TokenType::kVarEnd, "'}}'");
          body.push_back(std::move(s));
          break;
        }
        case TokenType::kBlockBegin: {
          const SourceLocation where = t.where;
          next();
          if (cur().type != TokenType::kName)
            syntax_error(cur().where, "expected a statement name, got {}", describe(cur()));
          for (std::string_view e : end) {
            if (cur().value == e) {
              end_found_ = cur().value;
              return body;
            }
          }
          body.push_back(parse_statement(where));
          break;
        }
        case TokenType::kEnd: {
          if (end.size() != 0) {
            std::string names;
            for (std::string_view e : end) names += (names.empty() ? "'" : " or '") + std::string(e) + "'";
            syntax_error(t.where, "unexpected end of template, expected {}", names);
          }
          return body;
        }
        default:
          syntax_error(t.where, "unexpected {}", describe(t));
      }
    }
  }

  StmtPtr parse_statement(SourceLocation where) {
    const Token& t = cur();
    const std::string name = t.value;
    const SourceLocation at = t.where;
    next();
    if (name == "if") return parse_if(where);
    if (name == "for") return parse_for(where);
    if (name == "set") return parse_set(where);
    if (name == "macro") return parse_macro(where);
    if (name == "call") return parse_call_block(where);
    if (name == "filter") return parse_filter_block(where);
    if (name == "with") return parse_with(where);
    if (name == "break" || name == "continue") {
      auto s = std::make_unique<Stmt>(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, where);
      expect_block_end();
      return s;
    }
    if (name == "generation") {
      // transformers' AssistantTracker marks assistant text for return_assistant_tokens_mask;
      // rendering is unaffected.
      auto s = std::make_unique<Stmt>(StmtKind::kBlock, where);
      expect_block_end();
      s->body = subparse({"endgeneration"});
      end_tag();
      return s;
    }
    if (name == "include" || name == "import" || name == "from" || name == "extends" || name == "block")
      syntax_error(at, "'{}' is not supported in chat templates (a template is one self-contained string)", name);
    if (name.rfind("end", 0) == 0 || name == "elif" || name == "else")
      syntax_error(at, "unexpected '{}' (no open block it could close)", name);
    syntax_error(at, "unknown statement '{}'", name);
  }

  // After subparse stopped at an end tag: consumes the name and the closing "%}".
  void end_tag() {
    next();
    expect_block_end();
  }

  StmtPtr parse_if(SourceLocation where) {
    auto s = std::make_unique<Stmt>(StmtKind::kIf, where);
    s->expr = parse_tuple(/*with_condexpr=*/false);
    expect_block_end();
    s->body = subparse({"elif", "else", "endif"});
    if (end_found_ == "elif") {
      const SourceLocation w = cur().where;
      next();
      s->else_body.push_back(parse_if(w));  // the elif chain ends with the endif it consumed
      return s;
    }
    if (end_found_ == "else") {
      next();
      expect_block_end();
      s->else_body = subparse({"endif"});
    }
    end_tag();
    return s;
  }

  StmtPtr parse_for(SourceLocation where) {
    auto s = std::make_unique<Stmt>(StmtKind::kFor, where);
    s->target = parse_assign_target(/*with_namespace=*/false);
    if (!skip_name("in")) syntax_error(cur().where, "expected 'in' after the loop variable, got {}", describe(cur()));
    s->expr = parse_tuple(/*with_condexpr=*/false, /*stop_at_if=*/true);
    if (skip_name("if")) s->condition = parse_expression();
    if (is_name("recursive")) syntax_error(cur().where, "recursive loops are not supported");
    expect_block_end();
    s->body = subparse({"endfor", "else"});
    if (end_found_ == "else") {
      next();
      expect_block_end();
      s->else_body = subparse({"endfor"});
    }
    end_tag();
    return s;
  }

  StmtPtr parse_set(SourceLocation where) {
    ExprPtr target = parse_assign_target(/*with_namespace=*/true);
    if (skip_op("=")) {
      auto s = std::make_unique<Stmt>(StmtKind::kSet, where);
      s->target = std::move(target);
      s->expr = parse_tuple();
      expect_block_end();
      return s;
    }
    auto s = std::make_unique<Stmt>(StmtKind::kSetBlock, where);
    s->target = std::move(target);
    while (skip_op("|")) s->filters.push_back(parse_filter_call(nullptr));
    expect_block_end();
    s->body = subparse({"endset"});
    end_tag();
    return s;
  }

  StmtPtr parse_macro(SourceLocation where) {
    auto s = std::make_unique<Stmt>(StmtKind::kMacro, where);
    s->name = expect_name();
    parse_params(s->params);
    expect_block_end();
    s->body = subparse({"endmacro"});
    end_tag();
    return s;
  }

  StmtPtr parse_call_block(SourceLocation where) {
    auto s = std::make_unique<Stmt>(StmtKind::kCallBlock, where);
    if (is_op("(")) parse_params(s->params);
    s->expr = parse_expression();
    if (s->expr->kind != ExprKind::kCall) syntax_error(s->expr->where, "expected a call after 'call'");
    expect_block_end();
    s->body = subparse({"endcall"});
    end_tag();
    return s;
  }

  StmtPtr parse_filter_block(SourceLocation where) {
    auto s = std::make_unique<Stmt>(StmtKind::kFilterBlock, where);
    s->filters.push_back(parse_filter_call(nullptr));
    while (skip_op("|")) s->filters.push_back(parse_filter_call(nullptr));
    expect_block_end();
    s->body = subparse({"endfilter"});
    end_tag();
    return s;
  }

  StmtPtr parse_with(SourceLocation where) {
    auto s = std::make_unique<Stmt>(StmtKind::kWith, where);
    while (cur().type != TokenType::kBlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      std::string name = expect_name();
      expect_op("=");
      s->assignments.emplace_back(std::move(name), parse_expression());
    }
    expect_block_end();
    s->body = subparse({"endwith"});
    end_tag();
    return s;
  }

  void parse_params(std::vector<Param>& params) {
    expect_op("(");
    while (!skip_op(")")) {
      if (!params.empty()) expect_op(",");
      if (skip_op(")")) break;  // trailing comma
      Param p;
      const SourceLocation w = cur().where;
      p.name = expect_name();
      for (const Param& q : params)
        if (q.name == p.name) syntax_error(w, "duplicate parameter '{}'", p.name);
      if (skip_op("=")) {
        p.default_value = parse_expression();
      } else if (!params.empty() && params.back().default_value) {
        syntax_error(w, "parameter '{}' without a default follows one with a default", p.name);
      }
      params.push_back(std::move(p));
    }
  }

  // name | (name, name, ...) | name.attr (set only: namespace attribute assignment)
  ExprPtr parse_assign_target(bool with_namespace) {
    Nest nest(*this);
    const SourceLocation w = cur().where;
    auto one = [&]() -> ExprPtr {
      const SourceLocation at = cur().where;
      if (skip_op("(")) {
        ExprPtr inner = parse_assign_target(false);
        expect_op(")");
        return inner;
      }
      std::string name = expect_name();
      if (with_namespace && skip_op(".")) {
        auto e = make(ExprKind::kGetAttr, at);
        auto base = make(ExprKind::kName, at);
        base->name = std::move(name);
        e->args.push_back(std::move(base));
        e->name = expect_name();
        return e;
      }
      check_assignable(name, at);
      auto e = make(ExprKind::kName, at);
      e->name = std::move(name);
      return e;
    };
    ExprPtr first = one();
    if (!is_op(",")) return first;
    auto tuple = make(ExprKind::kTuple, w);
    tuple->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type != TokenType::kName && !is_op("(")) break;
      tuple->args.push_back(one());
    }
    for (const auto& item : tuple->args)
      if (item->kind == ExprKind::kGetAttr)
        syntax_error(item->where, "a namespace attribute cannot be part of a tuple assignment");
    return tuple;
  }

  static void check_assignable(const std::string& name, SourceLocation at) {
    if (name == "true" || name == "false" || name == "none" || name == "True" || name == "False" || name == "None")
      syntax_error(at, "cannot assign to '{}'", name);
  }

  // ---- expressions ----

  // Top level of {{ }}, set values and for iterables: a comma makes a tuple.
  ExprPtr parse_tuple(bool with_condexpr = true, bool stop_at_if = false) {
    Nest nest(*this);
    const SourceLocation w = cur().where;
    std::vector<ExprPtr> items;
    bool comma = false;
    while (true) {
      if (!items.empty()) {
        if (!skip_op(",")) break;
        comma = true;
      }
      if (tuple_ends(stop_at_if)) break;
      items.push_back(with_condexpr ? parse_expression() : parse_or());
    }
    if (items.empty()) syntax_error(w, "expected an expression, got {}", describe(cur()));
    if (!comma && items.size() == 1) return std::move(items[0]);
    auto t = make(ExprKind::kTuple, w);
    t->args = std::move(items);
    return sealed(std::move(t));
  }

  bool tuple_ends(bool stop_at_if) const {
    const Token& t = cur();
    if (t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd || t.type == TokenType::kEnd) return true;
    if (t.type == TokenType::kOperator && (t.value == ")" || t.value == "]" || t.value == "}" || t.value == "="))
      return true;
    return stop_at_if && t.type == TokenType::kName && (t.value == "if" || t.value == "recursive");
  }

  ExprPtr parse_expression() {
    Nest nest(*this);
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const SourceLocation w = cur().where;
      next();
      auto cond = make(ExprKind::kCond, w);
      ExprPtr test = parse_or();
      ExprPtr otherwise = skip_name("else") ? parse_expression() : nullptr;
      cond->args.push_back(std::move(test));
      cond->args.push_back(std::move(e));
      cond->args.push_back(std::move(otherwise));
      e = sealed(std::move(cond));
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto e = make(ExprKind::kOr, cur().where);
      next();
      e->args.push_back(std::move(left));
      e->args.push_back(parse_and());
      left = sealed(std::move(e));
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto e = make(ExprKind::kAnd, cur().where);
      next();
      e->args.push_back(std::move(left));
      e->args.push_back(parse_not());
      left = sealed(std::move(e));
    }
    return left;
  }

  ExprPtr parse_not() {
    Nest nest(*this);
    if (is_name("not")) {
      auto e = make(ExprKind::kNot, cur().where);
      next();
      e->args.push_back(parse_not());
      return sealed(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const SourceLocation w = cur().where;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOperator && (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
                                                 cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        op = next().value;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && look().type == TokenType::kName && look().value == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::kCompare, w);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(std::move(op));
      cmp->args.push_back(parse_math1());
    }
    return cmp ? sealed(std::move(cmp)) : std::move(first);
  }

  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, SourceLocation w) {
    auto e = make(ExprKind::kBinary, w);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return sealed(std::move(e));
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const SourceLocation w = cur().where;
      std::string op = next().value;
      left = binary(std::move(op), std::move(left), parse_concat(), w);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const SourceLocation w = cur().where;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = make(ExprKind::kConcat, w);
    e->args.push_back(std::move(first));
    while (skip_op("~")) e->args.push_back(parse_math2());
    return sealed(std::move(e));
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const SourceLocation w = cur().where;
      std::string op = next().value;
      left = binary(std::move(op), std::move(left), parse_pow(), w);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary();
    while (is_op("**")) {
      const SourceLocation w = cur().where;
      next();
      left = binary("**", std::move(left), parse_unary(), w);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter = true) {
    Nest nest(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto e = make(is_op("-") ? ExprKind::kNeg : ExprKind::kPos, cur().where);
      next();
      e->args.push_back(parse_unary(false));
      node = sealed(std::move(e));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    Nest nest(*this);
    const Token& t = cur();
    const SourceLocation w = t.where;
    switch (t.type) {
      case TokenType::kName: {
        const std::string& n = t.value;
        auto e = make(ExprKind::kLiteral, w);
        if (n == "true" || n == "True") {
          e->literal = Value::boolean(true);
        } else if (n == "false" || n == "False") {
          e->literal = Value::boolean(false);
        } else if (n == "none" || n == "None") {
          e->literal = Value::none();
        } else {
          e = make(ExprKind::kName, w);
          e->name = n;
        }
        next();
        return e;
      }
      case TokenType::kString: {
        std::string s = next().value;
        while (cur().type == TokenType::kString) s += next().value;  // adjacent literals join
        auto e = make(ExprKind::kLiteral, w);
        e->literal = Value::string(std::move(s));
        return e;
      }
      case TokenType::kInteger: {
        const std::string& digits = t.value;
        std::int64_t v = 0;
        const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        auto e = make(ExprKind::kLiteral, w);
        if (ec != std::errc() || ptr != digits.data() + digits.size()) {
          // Python ints are unbounded; a literal beyond int64 becomes a float here (documented).
          e->literal = Value::number(std::strtod(digits.c_str(), nullptr));
        } else {
          e->literal = Value::integer(v);
        }
        next();
        return e;
      }
      case TokenType::kFloat: {
        auto e = make(ExprKind::kLiteral, w);
        e->literal = Value::number(std::strtod(t.value.c_str(), nullptr));
        next();
        return e;
      }
      case TokenType::kOperator: {
        if (t.value == "(") {
          next();
          if (skip_op(")")) return make(ExprKind::kTuple, w);
          ExprPtr inner = parse_tuple();
          expect_op(")");
          return inner;
        }
        if (t.value == "[") {
          next();
          auto e = make(ExprKind::kList, w);
          while (!skip_op("]")) {
            if (!e->args.empty()) {
              expect_op(",");
              if (skip_op("]")) break;
            }
            e->args.push_back(parse_expression());
          }
          return sealed(std::move(e));
        }
        if (t.value == "{") {
          next();
          auto e = make(ExprKind::kDict, w);
          while (!skip_op("}")) {
            if (!e->args.empty()) {
              expect_op(",");
              if (skip_op("}")) break;
            }
            e->args.push_back(parse_expression());
            expect_op(":");
            e->args.push_back(parse_expression());
          }
          return sealed(std::move(e));
        }
        break;
      }
      default:
        break;
    }
    syntax_error(w, "unexpected {}", describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        const SourceLocation w = cur().where;
        next();
        if (cur().type == TokenType::kName) {
          auto e = make(ExprKind::kGetAttr, w);
          e->name = next().value;
          e->args.push_back(std::move(node));
          node = sealed(std::move(e));
        } else if (cur().type == TokenType::kInteger) {
          auto e = make(ExprKind::kGetItem, w);
          auto idx = make(ExprKind::kLiteral, cur().where);
          std::int64_t v = 0;
          std::from_chars(cur().value.data(), cur().value.data() + cur().value.size(), v);
          idx->literal = Value::integer(v);
          next();
          e->args.push_back(std::move(node));
          e->args.push_back(std::move(idx));
          node = sealed(std::move(e));
        } else {
          syntax_error(cur().where, "expected an attribute name after '.', got {}", describe(cur()));
        }
      } else if (is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    Nest nest(*this);
    const SourceLocation w = cur().where;
    next();  // [
    ExprPtr parts[3];
    bool slice = false;
    int part = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        next();
        slice = true;
        if (++part > 2) syntax_error(cur().where, "a slice has at most three parts");
        continue;
      }
      if (parts[part]) syntax_error(cur().where, "expected ':' or ']' in a subscript, got {}", describe(cur()));
      parts[part] = parse_expression();
      if (!slice && is_op(",")) syntax_error(cur().where, "tuple subscripts are not supported");
    }
    next();  // ]
    if (!slice && !parts[0]) syntax_error(w, "empty subscript");
    if (!slice) {
      auto e = make(ExprKind::kGetItem, w);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(parts[0]));
      return sealed(std::move(e));
    }
    auto e = make(ExprKind::kSlice, w);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return sealed(std::move(e));
  }

  // ( args ) after a callee, a filter or a test: positional, name=value, *list, **dict.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) {
        expect_op(",");
        if (skip_op(")")) break;
      }
      first = false;
      if (skip_op("*")) {
        if (e.dyn_args) syntax_error(cur().where, "only one *args per call");
        e.dyn_args = parse_expression();
        continue;
      }
      if (skip_op("**")) {
        if (e.dyn_kwargs) syntax_error(cur().where, "only one **kwargs per call");
        e.dyn_kwargs = parse_expression();
        continue;
      }
      if (cur().type == TokenType::kName && look().type == TokenType::kOperator && look().value == "=") {
        const SourceLocation w = cur().where;
        std::string key = next().value;
        next();  // =
        for (const auto& kv : e.kwargs)
          if (kv.first == key) syntax_error(w, "keyword argument '{}' repeated", key);
        e.kwargs.emplace_back(std::move(key), parse_expression());
        continue;
      }
      if (!e.kwargs.empty() || e.dyn_kwargs) syntax_error(cur().where, "positional argument follows keyword argument");
      e.args.push_back(parse_expression());
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    Nest nest(*this);
    auto e = make(ExprKind::kCall, cur().where);
    e->args.push_back(std::move(callee));
    parse_call_args(*e);
    return sealed(std::move(e));
  }

  // name[.name...][(args)] after a '|' (operand may be null for filter blocks).
  ExprPtr parse_filter_call(ExprPtr operand) {
    Nest nest(*this);
    auto e = make(ExprKind::kFilter, cur().where);
    e->name = expect_name();
    while (skip_op(".")) e->name += "." + expect_name();
    e->args.push_back(std::move(operand));
    if (is_op("(")) parse_call_args(*e);
    return sealed(std::move(e));
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        next();
        node = parse_filter_call(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_test(ExprPtr node) {
    Nest nest(*this);
    auto e = make(ExprKind::kTest, cur().where);
    next();  // is
    if (skip_name("not")) e->negated = true;
    e->name = expect_name();
    while (skip_op(".")) e->name += "." + expect_name();
    e->args.push_back(std::move(node));
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
                t.type == TokenType::kFloat || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") && !is_name("in") &&
               !is_name("not")) {
      // jinja2: one argument without parentheses ("is divisibleby 3", "is sameas false").
      if (is_name("is")) syntax_error(t.where, "tests cannot be chained with 'is'");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return sealed(std::move(e));
  }

  std::vector<Token> tokens_;
  const TemplateLimits& limits_;
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  std::string end_found_;
};

// Parses template source into a Program. Errors: TemplateError kSyntax with line/column.
inline Program parse_template(std::string_view source, const TemplateLimits& limits = {}) {
  return Parser(tokenize(source, limits), limits).parse();
}

}  // namespace moe::chat
