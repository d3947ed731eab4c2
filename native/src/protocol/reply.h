// Reply writing: bytes go straight into the caller's output buffer; what does not fit is kept
// in the connection's pending buffer, in order, and is drained by the next feed().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace gravity::protocol {

// Decimal digits of v written into buf (at least 20 bytes); returns the count.
size_t format_u64(uint64_t v, char* buf);
size_t format_i64(int64_t v, char* buf);

class ReplyWriter {
 public:
  // `pending` must be empty while replies are being written into `out`; once it is not, every
  // further byte goes there so that order is kept. `out` may be null when capacity is 0.
  ReplyWriter(uint8_t* out, size_t capacity, std::string& pending)
      : out_(out), capacity_(capacity), pending_(pending) {}

  void write(const char* data, size_t size) {
    if (pending_.empty()) {
      size_t room = capacity_ - used_;
      size_t n = size < room ? size : room;
      if (n > 0) {  // never memcpy to a null `out`, not even 0 bytes
        std::memcpy(out_ + used_, data, n);
        used_ += n;
        data += n;
        size -= n;
      }
    }
    if (size > 0) pending_.append(data, size);
  }
  void write(std::string_view s) { write(s.data(), s.size()); }
  void write_char(char c) { write(&c, 1); }
  void write_u64(uint64_t v) {
    char buf[24];
    write(buf, format_u64(v, buf));
  }
  void write_i64(int64_t v) {
    char buf[24];
    write(buf, format_i64(v, buf));
  }
  void crlf() { write("\r\n", 2); }
  // One reply line: text + CRLF.
  void line(std::string_view text) {
    write(text);
    crlf();
  }

  size_t written() const { return used_; }         // bytes placed in the caller's buffer
  bool has_pending() const { return !pending_.empty(); }  // output is backed up

 private:
  uint8_t* out_;
  size_t capacity_;
  size_t used_ = 0;
  std::string& pending_;
};

// Appends to a std::string that is reused across commands (keeps its capacity).
inline void append_u64(std::string& s, uint64_t v) {
  char buf[24];
  s.append(buf, format_u64(v, buf));
}
inline void append_i64(std::string& s, int64_t v) {
  char buf[24];
  s.append(buf, format_i64(v, buf));
}

}  // namespace gravity::protocol
