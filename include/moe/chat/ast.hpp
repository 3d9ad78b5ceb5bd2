// The syntax tree of a parsed chat template: expressions and statements as jinja2's parser builds
// them (jinja2/nodes.py), reduced to what templates can express. Nodes own their children; the
// parser's nesting cap bounds the depth of every tree, so recursive walks and destruction are
// bounded too.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "moe/chat/error.hpp"
#include "moe/chat/value.hpp"

namespace moe::chat {

enum class ExprKind : std::uint8_t {
  kLiteral,  // literal
  kName,     // name
  kList,     // args: items
  kTuple,    // args: items
  kDict,     // args: key, value, key, value, ...
  kGetAttr,  // args[0].name
  kGetItem,  // args[0][args[1]]
  kSlice,    // args[0][args[1]:args[2]:args[3]] (null = omitted)
  kCall,     // args[0](args[1..], kwargs, *dyn_args, **dyn_kwargs)
  kFilter,   // args[0] | name(args[1..], kwargs); args[0] null in {% filter %} and {% set x | f %}
  kTest,     // args[0] is [not] name(args[1..], kwargs)
  kNot,      // not args[0]
  kNeg,      // -args[0]
  kPos,      // +args[0]
  kBinary,   // args[0] op args[1], op in + - * / // % **
  kConcat,   // args joined with ~
  kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (chained, as Python)
  kAnd,
  kOr,
  kCond,  // args[1] if args[0] else args[2] (args[2] null: undefined)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind;
  SourceLocation where;
  Value literal;     // kLiteral
  std::string name;  // kName, kGetAttr, kFilter, kTest; kBinary: the operator
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // kCall, kFilter, kTest
  ExprPtr dyn_args, dyn_kwargs;                         // kCall: *args, **kwargs
  std::vector<std::string> ops;                         // kCompare: == != < <= > >= in notin
  bool negated = false;                                 // kTest: "is not"
  std::uint32_t depth = 1;                              // 1 + the deepest child's depth (the parser caps it)

  Expr(ExprKind k, SourceLocation w) : kind(k), where(w) {}
};

enum class StmtKind : std::uint8_t {
  kOutput,       // text
  kPrint,        // {{ expr }}
  kIf,           // if expr: body else: else_body (an elif is an kIf alone in else_body)
  kFor,          // for target in expr [if cond]: body else: else_body
  kSet,          // set target = expr
  kSetBlock,     // set target [| filters]: body
  kMacro,        // macro name(params): body
  kCallBlock,    // call[(params)] expr: body (the body is caller())
  kFilterBlock,  // filter filters: body
  kWith,         // with assignments: body
  kBreak,
  kContinue,
  kBlock,  // a body run in place (the {% generation %} markers transformers understands)
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Param {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Stmt {
  StmtKind kind;
  SourceLocation where;
  std::string text;              // kOutput
  ExprPtr expr;                  // kPrint, kIf, kFor (the iterable), kSet, kCallBlock (the call)
  ExprPtr target;                // kFor, kSet, kSetBlock: kName / kTuple of kName / kGetAttr of a kName
  ExprPtr condition;             // kFor: the "if" filter
  std::vector<ExprPtr> filters;  // kSetBlock, kFilterBlock: kFilter nodes with a null operand
  std::vector<std::pair<std::string, ExprPtr>> assignments;  // kWith
  std::string name;                                          // kMacro
  std::vector<Param> params;                                 // kMacro, kCallBlock
  Body body, else_body;

  Stmt(StmtKind k, SourceLocation w) : kind(k), where(w) {}
};

struct Program {
  Body body;
};

}  // namespace moe::chat
