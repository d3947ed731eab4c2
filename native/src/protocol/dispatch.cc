// Command dispatch, in the order and with the token-count checks of memcached's
// proto_text.c process_command_ascii, so that malformed lines get memcached's replies.
#include <string_view>

#include "protocol/command.h"

namespace gravity::protocol {

namespace {

// memcached WANT_TOKENS_OR / WANT_TOKENS: counts include the terminal token.
bool want_either(const Tokens& t, size_t a, size_t b) { return t.ntokens() == a || t.ntokens() == b; }
bool want_range(const Tokens& t, size_t lo, size_t hi) {
  return t.ntokens() >= lo && t.ntokens() <= hi;
}

void error(Context& ctx) { out_line(ctx, "ERROR"); }

void process_version(Context& ctx) {
  ctx.out.write("VERSION ");
  ctx.out.line(ctx.server.options().version);
}

LineResult dispatch_meta(Context& ctx, Tokens& t) {
  switch (t.token[0][1]) {
    case 'g':
      process_mg(ctx, t);
      break;
    case 's':
      process_ms(ctx, t);
      break;
    case 'd':
      process_md(ctx, t);
      break;
    case 'a':
      process_ma(ctx, t);
      break;
    case 'e':
      process_me(ctx, t);
      break;
    case 'n':
      ctx.out.line("MN");
      break;
    default:
      error(ctx);
      break;
  }
  return LineResult::kDone;
}

}  // namespace

LineResult execute_line(Context& ctx, std::string_view raw_line) {
  const std::string_view line = until_nul(raw_line);
  Tokens& t = ctx.session.tokens;
  tokenize(line, t);
  ctx.noreply = false;
  // "All commands need a minimum of two tokens: cmd and NULL finalizer. There are also no
  // valid commands shorter than two bytes."
  if (t.count == 0 || t.token[0].size() < 2) {
    error(ctx);
    return LineResult::kDone;
  }
  const std::string_view cmd = t.token[0];
  const char first = cmd[0];
  if (first == 'm' && cmd.size() == 2) return dispatch_meta(ctx, t);

  if (first == 'g') {
    if (t.ntokens() < 3) {
      error(ctx);
    } else if (cmd == "get") {
      return process_get(ctx, line, t, GetCommand::kGet);
    } else if (cmd == "gets") {
      return process_get(ctx, line, t, GetCommand::kGets);
    } else if (cmd == "gat") {
      return process_get(ctx, line, t, GetCommand::kGat);
    } else if (cmd == "gats") {
      return process_get(ctx, line, t, GetCommand::kGats);
    } else {
      error(ctx);
    }
    return LineResult::kDone;
  }
  // memcached branches on the first letter; an unknown command under one of these letters is
  // "ERROR" without the HTTP check below.
  switch (first) {
    case 's':
      if (cmd == "set") {
        if (want_either(t, 6, 7)) {
          process_update(ctx, t, StoreMode::kSet);
        } else {
          error(ctx);
        }
      } else if (cmd == "stats") {
        process_stats(ctx, t);
      } else if (cmd == "shutdown") {
        ctx.out.line("ERROR: shutdown not enabled");
      } else {
        error(ctx);
      }
      return LineResult::kDone;
    case 'a':
      if ((cmd == "add" || cmd == "append") && want_either(t, 6, 7)) {
        process_update(ctx, t, cmd == "add" ? StoreMode::kAdd : StoreMode::kAppend);
      } else {
        error(ctx);
      }
      return LineResult::kDone;
    case 'c':
      if (cmd == "cas" && want_either(t, 7, 8)) {
        process_update(ctx, t, StoreMode::kCas);
      } else {
        error(ctx);
      }
      return LineResult::kDone;
    case 'i':
      if (cmd == "incr" && want_either(t, 4, 5)) {
        process_arithmetic(ctx, t, DeltaOp::kIncr);
      } else {
        error(ctx);
      }
      return LineResult::kDone;
    case 'd':
      if (cmd == "delete" && want_range(t, 3, 5)) {
        process_delete(ctx, t);
      } else if (cmd == "decr" && want_either(t, 4, 5)) {
        process_arithmetic(ctx, t, DeltaOp::kDecr);
      } else {
        error(ctx);
      }
      return LineResult::kDone;
    case 't':
      if (cmd == "touch" && want_either(t, 4, 5)) {
        process_touch(ctx, t);
      } else {
        error(ctx);
      }
      return LineResult::kDone;
    default:
      break;
  }

  if (cmd == "replace" || cmd == "prepend") {
    if (want_either(t, 6, 7)) {
      process_update(ctx, t, cmd == "replace" ? StoreMode::kReplace : StoreMode::kPrepend);
    } else {
      error(ctx);
    }
  } else if (cmd == "bget") {
    // "ancient binary get command ... keeping for compatibility reasons"
    if (t.ntokens() < 3) {
      error(ctx);
    } else {
      return process_get(ctx, line, t, GetCommand::kGet);
    }
  } else if (cmd == "flush_all") {
    if (want_range(t, 2, 4)) {
      process_flush_all(ctx, t);
    } else {
      error(ctx);
    }
  } else if (cmd == "lru_crawler") {
    return process_lru_crawler(ctx, t);
  } else if (cmd == "version") {
    process_version(ctx);
  } else if (cmd == "quit") {
    return LineResult::kClose;
  } else if (cmd == "verbosity") {
    if (want_either(t, 3, 4)) {
      process_verbosity(ctx, t);
    } else {
      error(ctx);
    }
  } else if (t.token[t.count - 1].substr(0, 5) == "HTTP/") {
    // memcached closes a connection that speaks HTTP to it.
    return LineResult::kClose;
  } else {
    error(ctx);
  }
  return LineResult::kDone;
}

}  // namespace gravity::protocol
