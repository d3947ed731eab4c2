// A minimal test harness for the native tests: TEST(name) { CHECK(...); CHECK_EQ(a, b); }
// Each test binary's main() is RUN_TESTS(); it prints "name: ok|FAILED" per test and
// a final "native <binary>: N passed, N failed" line, and exits 1 if any test failed.
#pragma once

#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace gravity_test {

struct Case {
  const char* name;
  std::function<void()> body;
};

inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

inline int& failures_in_case() {
  static int n = 0;
  return n;
}

struct Register {
  Register(const char* name, std::function<void()> body) { cases().push_back({name, std::move(body)}); }
};

template <class T>
std::string show(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

inline void fail(const char* file, int line, const std::string& what) {
  ++failures_in_case();
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, what.c_str());
}

inline int run_all(const char* binary) {
  int passed = 0, failed = 0;
  for (const Case& c : cases()) {
    failures_in_case() = 0;
    c.body();
    if (failures_in_case() == 0) {
      ++passed;
      std::printf("%s: ok\n", c.name);
    } else {
      ++failed;
      std::printf("%s: FAILED\n", c.name);
    }
  }
  std::printf("native %s: %d passed, %d failed\n", binary, passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace gravity_test

#define GT_CONCAT2(a, b) a##b
#define GT_CONCAT(a, b) GT_CONCAT2(a, b)
#define TEST(name)                                                              \
  static void name();                                                           \
  static gravity_test::Register GT_CONCAT(register_, name)(#name, name);        \
  static void name()
#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) gravity_test::fail(__FILE__, __LINE__, "CHECK(" #cond ")");   \
  } while (0)
#define CHECK_EQ(a, b)                                                                      \
  do {                                                                                      \
    const auto& gt_a = (a);                                                                 \
    const auto& gt_b = (b);                                                                 \
    if (!(gt_a == gt_b))                                                                    \
      gravity_test::fail(__FILE__, __LINE__,                                                \
                         "CHECK_EQ(" #a ", " #b "): " + gravity_test::show(gt_a) + " != " + \
                             gravity_test::show(gt_b));                                     \
  } while (0)
#define RUN_TESTS(binary) \
  int main() { return gravity_test::run_all(binary); }
