#include "chat/jinja_eval.h"

#include <cmath>
#include <unordered_map>

#include "chat/jinja_builtins.h"
#include "core/error.h"

namespace wkvq::jinja {

namespace {

// An error that already names its template position (not prefixed again further out).
class PositionedError : public Error {
 public:
  using Error::Error;
};

template <class F>
auto at_position(int line, int column, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const PositionedError&) {
    throw;
  } catch (const Error& e) {
    throw PositionedError("chat template line " + std::to_string(line) + ", column " +
                          std::to_string(column) + ": " + e.what());
  }
}

enum class Flow { Normal, Break, Continue };

constexpr int kMaxDepth = 200;            // macro recursion bound
constexpr size_t kMaxString = 64u << 20;  // bytes of one string or of the output

class Renderer {
 public:
  Renderer(const ValueDict& variables, int64_t max_steps) : max_steps_(max_steps) {
    scopes_.emplace_back();
    for (auto& [k, v] : global_functions()) scopes_.back()[k] = v;
    for (const auto& [k, v] : variables) scopes_.back()[k] = v;
  }

  std::string run(const Body& body) {
    std::string out;
    Flow f = exec(body, out);
    WKVQ_REQUIRE(f == Flow::Normal, "chat template: break or continue outside a loop");
    return out;
  }

 private:
  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::undefined(name);
  }
  void assign(const std::string& name, Value v) { scopes_.back()[name] = std::move(v); }

  Flow exec(const Body& body, std::string& out) {
    for (const StmtPtr& s : body) {
      Flow f = at_position(s->line, s->column, [&] { return exec_one(*s, out); });
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  // Counts one statement or loop iteration against max_steps_.
  void step(const std::string& out) {
    WKVQ_REQUIRE(++steps_ <= max_steps_, "the template ran more than ", max_steps_,
                 " statements and loop iterations (an endless loop?)");
    WKVQ_REQUIRE(out.size() <= kMaxString, "the output grew beyond ", kMaxString, " bytes");
  }

  Flow exec_one(const Stmt& s, std::string& out) {
    step(out);
    switch (s.kind) {
      case Stmt::Kind::Text:
        out += s.text;
        return Flow::Normal;
      case Stmt::Kind::Output:
        out += eval(*s.exprs[0]).str();
        return Flow::Normal;
      case Stmt::Kind::If:
        for (size_t i = 0; i < s.exprs.size(); ++i) {
          if (eval(*s.exprs[i]).truthy()) return exec(s.bodies[i], out);
        }
        return s.bodies.size() > s.exprs.size() ? exec(s.bodies.back(), out) : Flow::Normal;
      case Stmt::Kind::For:
        return exec_for(s, out);
      case Stmt::Kind::Set:
        assign_target(*s.exprs[0], eval(*s.exprs[1]));
        return Flow::Normal;
      case Stmt::Kind::SetBlock: {
        std::string captured;
        exec(s.bodies[0], captured);
        assign(s.names[0], Value(std::move(captured)));
        return Flow::Normal;
      }
      case Stmt::Kind::Macro:
        assign(s.names[0], make_macro(s));
        return Flow::Normal;
      case Stmt::Kind::Break:
        return Flow::Break;
      case Stmt::Kind::Continue:
        return Flow::Continue;
      case Stmt::Kind::Scope:
        return exec(s.bodies[0], out);
    }
    return Flow::Normal;
  }

  void assign_target(const Expr& target, Value v) {
    if (target.kind == Expr::Kind::Name) {
      assign(target.name, std::move(v));
    } else if (target.kind == Expr::Kind::Attr) {
      Value obj = eval(*target.args[0]);
      WKVQ_REQUIRE(obj.kind() == Value::Kind::Namespace, "set ", target.args[0]->name, ".",
                   target.name, ": only attributes of a namespace() can be set, '",
                   target.args[0]->name, "' is a ", obj.kind_name());
      obj.set(target.name, std::move(v));
    } else {
      ValueList items = iterate(v);
      WKVQ_REQUIRE(items.size() == target.args.size(), "set: cannot unpack ", items.size(),
                   " values into ", target.args.size(), " names");
      for (size_t i = 0; i < items.size(); ++i) assign(target.args[i]->name, items[i]);
    }
  }

  void bind_loop_targets(const Stmt& s, const Value& item) {
    if (s.names.size() == 1) {
      assign(s.names[0], item);
      return;
    }
    ValueList parts = iterate(item);
    WKVQ_REQUIRE(parts.size() == s.names.size(), "for: cannot unpack ", parts.size(),
                 " values into ", s.names.size(), " loop variables");
    for (size_t i = 0; i < parts.size(); ++i) assign(s.names[i], parts[i]);
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    ValueList all = iterate(eval(*s.exprs[0]));
    Scope guard(*this);
    ValueList items;
    if (s.exprs[1] != nullptr) {  // for x in xs if cond: filtered before loop.* are counted
      for (const Value& item : all) {
        bind_loop_targets(s, item);
        if (eval(*s.exprs[1]).truthy()) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      step(out);
      const Value& item = items[static_cast<size_t>(i)];
      bind_loop_targets(s, item);
      ValueDict loop{
          {"index", Value(i + 1)},
          {"index0", Value(i)},
          {"revindex", Value(n - i)},
          {"revindex0", Value(n - i - 1)},
          {"first", Value(i == 0)},
          {"last", Value(i == n - 1)},
          {"length", Value(n)},
          {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("previtem")},
          {"nextitem",
           i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("nextitem")}};
      loop.emplace_back("cycle", Value::function("cycle", [i](const CallArgs& a) {
                          WKVQ_REQUIRE(!a.positional.empty(),
                                       "loop.cycle() needs at least one value");
                          return a.positional[static_cast<size_t>(i) % a.positional.size()];
                        }));
      assign("loop", Value::dict(std::move(loop)));
      if (exec(s.bodies[0], out) == Flow::Break) break;
    }
    if (n == 0) return exec(s.bodies[1], out);
    return Flow::Normal;
  }

  Value make_macro(const Stmt& s) {
    const Stmt* def = &s;
    return Value::function(s.names[0], [this, def](const CallArgs& a) {
      WKVQ_REQUIRE(++depth_ < kMaxDepth, "macro calls nested deeper than ", kMaxDepth);
      Scope guard(*this);
      size_t params = def->names.size() - 1;
      WKVQ_REQUIRE(a.positional.size() <= params, "macro ", def->names[0], " takes ", params,
                   " arguments, got ", a.positional.size());
      for (size_t i = 0; i < params; ++i) {
        const ExprPtr& dflt = def->exprs[i];
        Value fallback = dflt != nullptr ? eval(*dflt) : Value::undefined(def->names[i + 1]);
        assign(def->names[i + 1], argument(a, i, def->names[i + 1].c_str(), fallback));
      }
      std::string out;
      exec(def->bodies[0], out);
      --depth_;
      return Value(std::move(out));
    });
  }

  // A new innermost scope for the lifetime of the guard.
  struct Scope {
    explicit Scope(Renderer& r) : r_(r) { r_.scopes_.emplace_back(); }
    ~Scope() { r_.scopes_.pop_back(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    Renderer& r_;
  };

  Value eval(const Expr& e) {
    return at_position(e.line, e.column, [&] { return eval_here(e); });
  }
  Value eval_here(const Expr& e);
  Value eval_binary(const Expr& e);
  CallArgs eval_args(const Expr& e);

  std::vector<std::unordered_map<std::string, Value>> scopes_;
  int depth_ = 0;
  int64_t steps_ = 0;
  int64_t max_steps_;
};

CallArgs Renderer::eval_args(const Expr& e) {
  CallArgs a;
  size_t n_kw = e.keywords.size();
  size_t n_pos = e.args.size() - 1 - n_kw;
  for (size_t i = 0; i < n_pos; ++i) a.positional.push_back(eval(*e.args[1 + i]));
  for (size_t i = 0; i < n_kw; ++i)
    a.keyword.emplace_back(e.keywords[i], eval(*e.args[1 + n_pos + i]));
  return a;
}

Value Renderer::eval_here(const Expr& e) {
  using K = Expr::Kind;
  switch (e.kind) {
    case K::Literal:
      return e.literal;
    case K::Name:
      return lookup(e.name);
    case K::Attr:
      return get_attribute(eval(*e.args[0]), e.name);
    case K::Index:
      return get_item(eval(*e.args[0]), eval(*e.args[1]));
    case K::Slice: {
      auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
      return get_slice(eval(*e.args[0]), part(1), part(2), part(3));
    }
    case K::Call: {
      Value f = eval(*e.args[0]);
      WKVQ_REQUIRE(f.kind() == Value::Kind::Function, "'",
                   e.args[0]->name.empty() ? f.str() : e.args[0]->name, "' is ",
                   f.is_undefined() ? "undefined" : std::string("a ") + f.kind_name(),
                   ", not a function");
      return f.callable()(eval_args(e));
    }
    case K::Filter:
      return apply_filter(e.name, eval(*e.args[0]), eval_args(e));
    case K::Test:
      return Value(apply_test(e.name, eval(*e.args[0]), eval_args(e)) != e.negated);
    case K::Unary: {
      Value v = eval(*e.args[0]);
      if (e.name == "not") return Value(!v.truthy());
      WKVQ_REQUIRE(v.is_number(), "unary ", e.name, " expects a number, got a ", v.kind_name());
      if (e.name == "+") return v;
      return v.kind() == Value::Kind::Int ? Value(-v.as_int()) : Value(-v.as_number());
    }
    case K::Binary:
      return eval_binary(e);
    case K::Ternary:
      if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
      return e.args[2] ? eval(*e.args[2]) : Value::undefined("else");
    case K::List:
    case K::Tuple: {
      ValueList items;
      for (const ExprPtr& a : e.args) items.push_back(eval(*a));
      return Value::list(std::move(items));
    }
    case K::Dict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value key = eval(*e.args[i]);
        WKVQ_REQUIRE(key.is_string(), "dict keys must be strings, got a ", key.kind_name());
        d.set(key.as_string(), eval(*e.args[i + 1]));
      }
      return d;
    }
  }
  fail("unknown expression");
}

// `a in b` for a string, mapping or list b (Jinja's `in` and `not in`).
Value membership(const std::string& op, const Value& a, const Value& b) {
  bool found = false;
  if (b.is_string()) {
    WKVQ_REQUIRE(a.is_string(), "'in <string>' needs a string on the left, got a ", a.kind_name());
    found = b.as_string().find(a.as_string()) != std::string::npos;
  } else if (b.is_mapping()) {
    found = a.is_string() && b.find(a.as_string()) != nullptr;
  } else {
    WKVQ_REQUIRE(
        b.kind() == Value::Kind::List, "'", op, "' needs a list, dict or string on the right, got ",
        b.is_undefined() ? "undefined '" + b.as_string() + "'" : std::string("a ") + b.kind_name());
    for (const Value& item : b.items()) found = found || equal(a, item);
  }
  return Value(found != (op == "not in"));
}

// The numeric operators (Python semantics: floor division and modulo round towards -inf; int
// overflow is an error) on two numbers.
Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  bool ints = a.kind() == Value::Kind::Int && b.kind() == Value::Kind::Int;
  double x = a.as_number(), y = b.as_number();
  if (op == "/") {
    WKVQ_REQUIRE(y != 0, "division by zero");
    return Value(x / y);
  }
  if (op == "//" || op == "%") {
    WKVQ_REQUIRE(y != 0, "division by zero");
    if (ints) {
      int64_t p = a.as_int(), q = b.as_int();
      int64_t d = p / q, r = p % q;
      if (r != 0 && ((r < 0) != (q < 0))) {
        --d;
        r += q;
      }
      return op == "//" ? Value(d) : Value(r);
    }
    double d = std::floor(x / y);
    return op == "//" ? Value(d) : Value(x - d * y);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) return Value(static_cast<int64_t>(std::pow(x, y)));
    return Value(std::pow(x, y));
  }
  if (ints) {
    int64_t p = a.as_int(), q = b.as_int(), r = 0;
    bool overflow = op == "+"   ? __builtin_add_overflow(p, q, &r)
                    : op == "-" ? __builtin_sub_overflow(p, q, &r)
                                : __builtin_mul_overflow(p, q, &r);
    WKVQ_REQUIRE(!overflow, "integer overflow in '", op, "'");
    return Value(r);
  }
  return Value(op == "+" ? x + y : op == "-" ? x - y : x * y);
}

Value Renderer::eval_binary(const Expr& e) {
  const std::string& op = e.name;
  Value a = eval(*e.args[0]);
  if (op == "and") return a.truthy() ? eval(*e.args[1]) : a;
  if (op == "or") return a.truthy() ? a : eval(*e.args[1]);
  Value b = eval(*e.args[1]);
  if (op == "~" || op == "+" || op == "*") {
    size_t size_a = a.is_string()                   ? a.as_string().size()
                    : a.kind() == Value::Kind::List ? a.items().size()
                                                    : 0;
    size_t size_b = b.is_string()                   ? b.as_string().size()
                    : b.kind() == Value::Kind::List ? b.items().size()
                                                    : 0;
    WKVQ_REQUIRE(size_a + size_b <= kMaxString, "'", op, "' would build a value over ", kMaxString,
                 " bytes");
  }
  if (op == "~") return Value(a.str() + b.str());
  if (op == "==") return Value(equal(a, b));
  if (op == "!=") return Value(!equal(a, b));
  if (op == "in" || op == "not in") return membership(op, a, b);
  for (const Value* v : {&a, &b}) {
    WKVQ_REQUIRE(!v->is_undefined(), "'", v->as_string(), "' is undefined (used with '", op, "')");
  }
  if (op == "<") return Value(compare(a, b) < 0);
  if (op == ">") return Value(compare(a, b) > 0);
  if (op == "<=") return Value(compare(a, b) <= 0);
  if (op == ">=") return Value(compare(a, b) >= 0);
  if (op == "+" && a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
  if (op == "+" && a.kind() == Value::Kind::List && b.kind() == Value::Kind::List) {
    ValueList items = a.items();
    items.insert(items.end(), b.items().begin(), b.items().end());
    return Value::list(std::move(items));
  }
  WKVQ_REQUIRE(a.is_number() && b.is_number(), "'", op, "' needs two numbers",
               op == "+" ? " or two strings" : "", ", got a ", a.kind_name(), " and a ",
               b.kind_name());
  return arithmetic(op, a, b);
}

}  // namespace

std::string render(const Body& tmpl, const ValueDict& variables, int64_t max_steps) {
  return Renderer(variables, max_steps).run(tmpl);
}

}  // namespace wkvq::jinja
