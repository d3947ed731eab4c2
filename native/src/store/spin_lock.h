// The shard lock: a test-and-test-and-set spin lock that yields the CPU after a short spin.
//
// Shard critical sections are a hash lookup and a few pointer moves (well under a microsecond),
// so a waiter is better off spinning than sleeping: measured on the native read benchmark, a
// std::mutex spent about a quarter of the time in futex wake-ups under a Zipf key load, where the
// hottest shards are contended. Satisfies BasicLockable (std::lock_guard works with it).
#pragma once

#include <atomic>
#include <thread>

namespace gravity {

class SpinLock {
 public:
  void lock() {
    for (int spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      // Wait on a plain load so the line stays shared until the holder releases it.
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < kSpinsBeforeYield) {
          pause();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }

  bool try_lock() {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr int kSpinsBeforeYield = 128;

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<bool> locked_{false};
};

}  // namespace gravity
