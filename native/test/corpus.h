// The protocol transcript corpus (test/corpus/*.txt, format in test/corpus/README.md): parsing,
// and matching a connection's reply bytes against a case's expectations. Shared by the native
// protocol tests; test/corpus/memcached_corpus.py implements the same rules for real memcached.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace corpus {

struct Step {
  enum Kind { kSend, kAdvance, kExpect, kMatch, kClosed } kind;
  std::string text;     // bytes to send / expect, or the regex
  int64_t seconds = 0;  // kAdvance
};

struct Case {
  std::string file;
  int line = 0;
  std::string name;
  bool native_only = false;  // [native-only]: cannot run against memcached or over a socket
  bool leaf_only = false;    // [leaf-only]: holds for one server, not through a router
  bool one_read = false;     // [one-read]: holds when the input arrives whole, not split
  std::vector<Step> steps;

  // The input as segments separated by clock advances: segment i is sent, then advances[i].
  std::vector<std::string> segments() const {
    std::vector<std::string> out(1);
    for (const Step& s : steps) {
      if (s.kind == Step::kSend) out.back() += s.text;
      if (s.kind == Step::kAdvance) out.emplace_back();
    }
    return out;
  }
  std::vector<int64_t> advances() const {
    std::vector<int64_t> out;
    for (const Step& s : steps) {
      if (s.kind == Step::kAdvance) out.push_back(s.seconds);
    }
    return out;
  }
  size_t input_size() const {
    size_t n = 0;
    for (const Step& s : steps) n += s.kind == Step::kSend ? s.text.size() : 0;
    return n;
  }
  bool expects_close() const {
    for (const Step& s : steps) {
      if (s.kind == Step::kClosed) return true;
    }
    return false;
  }
};

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Corpus text -> bytes: \r \n \t \\ \xNN and {repeat:C:N}. Sets `ok` false on a bad escape.
inline std::string unescape(const std::string& text, bool& ok) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      const char n = text[i + 1];
      if (n == 'r') {
        out += '\r';
      } else if (n == 'n') {
        out += '\n';
      } else if (n == 't') {
        out += '\t';
      } else if (n == '\\') {
        out += '\\';
      } else if (n == 'x' && i + 3 < text.size() + 0 && hex_digit(text[i + 2]) >= 0 &&
                 hex_digit(text[i + 3]) >= 0) {
        out += static_cast<char>(hex_digit(text[i + 2]) * 16 + hex_digit(text[i + 3]));
        i += 4;
        continue;
      } else {
        ok = false;
      }
      i += 2;
      continue;
    }
    if (c == '{' && text.compare(i, 8, "{repeat:") == 0) {
      // {repeat:C:N}: C is one character or one escape.
      size_t unit_end = i + 9;
      if (text.compare(i + 8, 2, "\\x") == 0) {
        unit_end = i + 12;
      } else if (i + 8 < text.size() && text[i + 8] == '\\') {
        unit_end = i + 10;
      }
      const size_t close = text.find('}', unit_end);
      if (unit_end < text.size() && text[unit_end] == ':' && close != std::string::npos &&
          close > unit_end + 1 &&
          text.find_first_not_of("0123456789", unit_end + 1) == close) {
        const std::string unit = unescape(text.substr(i + 8, unit_end - i - 8), ok);
        const size_t count = std::stoul(text.substr(unit_end + 1, close - unit_end - 1));
        for (size_t k = 0; k < count; ++k) out += unit;
        i = close + 1;
        continue;
      }
    }
    out += c;
    ++i;
  }
  return out;
}

// Parses one corpus file; `error` names the first malformed line.
inline std::vector<Case> parse_file(const std::string& path, std::string& error) {
  std::vector<Case> cases;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open " + path;
    return cases;
  }
  std::string line;
  int no = 0;
  auto rest = [](const std::string& l, size_t n) {
    return l.size() > n && l[n] == ' ' ? l.substr(n + 1) : l.substr(n);
  };
  while (std::getline(in, line)) {
    ++no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.compare(0, 4, "=== ") == 0) {
      Case c;
      c.file = path;
      c.line = no;
      c.name = line.substr(4);
      while (!c.name.empty() && c.name.back() == ' ') c.name.pop_back();
      // Tags: "[tag tag ...]" (spaces or commas between) at the end of the header.
      const size_t open = c.name.rfind('[');
      if (!c.name.empty() && c.name.back() == ']' && open != std::string::npos) {
        std::string tags = c.name.substr(open + 1, c.name.size() - open - 2);
        for (char& ch : tags) {
          if (ch == ',') ch = ' ';
        }
        std::istringstream words(tags);
        std::string tag;
        while (words >> tag) {
          if (tag == "native-only") {
            c.native_only = true;
          } else if (tag == "leaf-only") {
            c.leaf_only = true;
          } else if (tag == "one-read") {
            c.one_read = true;
          } else {
            error = path + ":" + std::to_string(no) + ": unknown tag [" + tag + "]";
            return {};
          }
        }
        c.name = c.name.substr(0, open);
        while (!c.name.empty() && c.name.back() == ' ') c.name.pop_back();
      }
      cases.push_back(std::move(c));
      continue;
    }
    if (line.empty() || line[0] == '#' || cases.empty()) continue;
    Case& c = cases.back();
    bool ok = true;
    Step step{Step::kSend, "", 0};
    if (line.compare(0, 2, ">>") == 0) {
      step.text = unescape(rest(line, 2), ok);
    } else if (line[0] == '>') {
      step.text = unescape(rest(line, 1), ok) + "\r\n";
    } else if (line.compare(0, 2, "<~") == 0) {
      step.kind = Step::kMatch;
      step.text = rest(line, 2);
    } else if (line[0] == '<') {
      step.kind = Step::kExpect;
      step.text = unescape(rest(line, 1), ok) + "\r\n";
    } else if (line.compare(0, 10, "@ advance ") == 0) {
      step.kind = Step::kAdvance;
      step.seconds = std::stoll(line.substr(10));
    } else if (line == "! closed") {
      step.kind = Step::kClosed;
    } else {
      ok = false;
    }
    if (!ok) {
      error = path + ":" + std::to_string(no) + ": malformed line: " + line;
      return {};
    }
    c.steps.push_back(std::move(step));
  }
  return cases;
}

inline std::string printable(const std::string& s, size_t limit = 160) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

// Checks reply bytes and the close flag against the case; returns "" or what differs.
inline std::string match(const Case& c, const std::string& actual, bool closed) {
  size_t pos = 0;
  for (const Step& s : c.steps) {
    if (s.kind == Step::kExpect) {
      if (actual.compare(pos, s.text.size(), s.text) != 0) {
        return "at byte " + std::to_string(pos) + " expected '" + printable(s.text) + "' got '" +
               printable(actual.substr(pos)) + "'";
      }
      pos += s.text.size();
    } else if (s.kind == Step::kMatch) {
      const size_t end = actual.find("\r\n", pos);
      if (end == std::string::npos) {
        return "expected a line matching /" + s.text + "/, got '" + printable(actual.substr(pos)) + "'";
      }
      const std::string line = actual.substr(pos, end - pos);
      if (!std::regex_match(line, std::regex(s.text, std::regex::ECMAScript))) {
        return "line '" + printable(line) + "' does not match /" + s.text + "/";
      }
      pos = end + 2;
    }
  }
  if (pos != actual.size()) return "unexpected extra reply '" + printable(actual.substr(pos)) + "'";
  if (closed != c.expects_close()) return closed ? "connection was closed" : "connection stayed open";
  return "";
}

}  // namespace corpus
