// The shard lock: a reader-writer spin lock that yields the CPU after a short spin. Writers
// (lock/unlock) hold it alone; readers (lock_shared/unlock_shared) hold it together, and a reader
// writes no cache line that other threads use.
//
// Why spin: shard critical sections are a hash lookup and a few pointer moves (well under a
// microsecond); measured on the native read benchmark, a std::mutex spent about a quarter of the
// time in futex wake-ups under a Zipf key load, where the hottest shards are contended.
// Why readers share it: under Zipf every thread reads the hottest shards at once; with one
// exclusive lock two threads took turns through each lookup (cache misses included) and the native
// read benchmark gained 1.4x from a second thread (2026-12-03; sched_yield 7% of the profile).
// Why reader slots: a shared count in the lock word still moves that word's cache line between
// cores on every read (a locked add on a line the other core just wrote); with the lock taken out
// of the benchmark's reads altogether, two threads did 1.9x one.
//
// Readers announce themselves in a slot of their own (a per-thread cache line, "distributed
// reader indicators": Linux's brlock; Dice and Kogan, "BRAVO — Biased Locking for Reader-Writer
// Locks", USENIX ATC 2019), and a writer waits for every slot naming its lock to clear:
//
//   reader:  slot = &lock (seq_cst) ; if lock.state has writer bits: slot = null, wait, retry
//   writer:  state |= writer (seq_cst RMW) ; for each slot: wait while slot == &lock
//
// The race: a reader's slot store and a writer's RMW of the state are both in the single total
// order of seq_cst operations. If the reader's store comes first, the writer's scan (after its RMW)
// sees it, or sees the reader's later release of the slot, which happens-before the writer's
// critical section. If the writer's RMW comes first, the reader's load of the state (after its
// store) sees the writer bit and the reader backs out. Either way they never overlap. A writer's
// unlock is a release RMW of the state that the next reader's load reads from.
//
// A thread without a slot (more than kReaderSlots threads use locks at once, or a nested read
// while its slot is taken) counts itself in the state word instead, as a plain reader-writer spin
// lock does. A writer that finds readers sets "writer waiting", which turns new readers away until
// it has the lock, so a stream of readers cannot starve writers.
//
//   state_: [ writer (1 bit) | writer waiting (1 bit) | counted readers (30 bits) ]
//
// Satisfies Lockable (std::lock_guard) and, with lock_shared/unlock_shared, SharedLockable.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace gravity {

class SpinLock;

// One thread's reader slot, on a cache line of its own.
struct alignas(64) ReaderSlot {
  std::atomic<const SpinLock*> reading{nullptr};  // the lock it reads under; written only by its owner
  std::atomic<bool> owned{false};                 // a thread holds this slot until it exits
};

// The per-thread reader slots, process-wide (a slot names the lock it reads, whatever the store).
class ReaderSlots {
 public:
  static constexpr size_t kSlots = 64;
  using Slot = ReaderSlot;

  // This thread's slot, taken on first use and given back when the thread exits; null when all
  // are taken.
  static Slot* of_this_thread() {
    thread_local Owner owner;
    return owner.slot;
  }

  // Calls f(slot) for every slot that a thread has ever owned.
  template <class F>
  static void for_each(F f) {
    const size_t n = used_.load(std::memory_order_seq_cst);
    for (size_t i = 0; i < n; ++i) f(slots_[i]);
  }

 private:
  struct Owner {
    Slot* slot = nullptr;
    Owner() {
      for (size_t i = 0; i < kSlots; ++i) {
        bool free = false;
        if (slots_[i].owned.compare_exchange_strong(free, true, std::memory_order_acquire)) {
          slot = &slots_[i];
          // Raise the high-water mark before the slot is ever used, so every scan covers it.
          size_t used = used_.load(std::memory_order_relaxed);
          while (used < i + 1 && !used_.compare_exchange_weak(used, i + 1, std::memory_order_seq_cst)) {
          }
          return;
        }
      }
    }
    ~Owner() {
      if (slot != nullptr) slot->owned.store(false, std::memory_order_release);
    }
  };

  static inline Slot slots_[kSlots];
  static inline std::atomic<size_t> used_{0};  // slots_[0, used_) have been owned
};

class SpinLock {
 public:
  void lock() {
    for (int spins = 0;; ++spins) {
      uint32_t s = state_.load(std::memory_order_relaxed);
      if ((s & ~kWriterWaiting) == 0) {
        // Free (perhaps with our own or another writer's waiting bit): take it, clearing the bit;
        // a writer still waiting sets it again on its next turn.
        if (state_.compare_exchange_weak(s, kWriter, std::memory_order_seq_cst, std::memory_order_relaxed)) {
          wait_for_slot_readers();
          return;
        }
      } else if ((s & kWriterWaiting) == 0) {
        state_.fetch_or(kWriterWaiting, std::memory_order_relaxed);
      }
      backoff(spins);
    }
  }

  // Takes the lock only if nobody holds it, in either mode.
  bool try_lock() {
    uint32_t s = state_.load(std::memory_order_relaxed);
    if ((s & ~kWriterWaiting) != 0 ||
        !state_.compare_exchange_strong(s, kWriter, std::memory_order_seq_cst, std::memory_order_relaxed)) {
      return false;
    }
    bool readers = false;
    ReaderSlots::for_each([&](const ReaderSlots::Slot& slot) {
      if (slot.reading.load(std::memory_order_seq_cst) == this) readers = true;
    });
    if (!readers) return true;
    state_.fetch_and(~kWriter, std::memory_order_release);
    return false;
  }

  void unlock() { state_.fetch_and(~kWriter, std::memory_order_release); }

  void lock_shared() {
    ReaderSlots::Slot* slot = ReaderSlots::of_this_thread();
    if (slot == nullptr || slot->reading.load(std::memory_order_relaxed) != nullptr) {
      lock_shared_counted();
      return;
    }
    for (int spins = 0;; ++spins) {
      slot->reading.store(this, std::memory_order_seq_cst);
      if ((state_.load(std::memory_order_seq_cst) & (kWriter | kWriterWaiting)) == 0) return;
      slot->reading.store(nullptr, std::memory_order_release);
      while ((state_.load(std::memory_order_relaxed) & (kWriter | kWriterWaiting)) != 0) backoff(spins++);
    }
  }

  void unlock_shared() {
    ReaderSlots::Slot* slot = ReaderSlots::of_this_thread();
    if (slot != nullptr && slot->reading.load(std::memory_order_relaxed) == this) {
      slot->reading.store(nullptr, std::memory_order_release);
    } else {
      state_.fetch_sub(1, std::memory_order_release);
    }
  }

 private:
  static constexpr uint32_t kWriter = 1u << 31;
  static constexpr uint32_t kWriterWaiting = 1u << 30;
  static constexpr int kSpinsBeforeYield = 128;

  void lock_shared_counted() {
    for (int spins = 0;; ++spins) {
      // Optimistic: count ourselves in, and back out if a writer holds the lock or waits for it.
      const uint32_t s = state_.fetch_add(1, std::memory_order_acquire);
      if ((s & (kWriter | kWriterWaiting)) == 0) return;
      state_.fetch_sub(1, std::memory_order_relaxed);
      while ((state_.load(std::memory_order_relaxed) & (kWriter | kWriterWaiting)) != 0) backoff(spins++);
    }
  }

  // The writer bit is set: readers in slots finish what they began and new ones back out.
  void wait_for_slot_readers() const {
    ReaderSlots::for_each([&](const ReaderSlots::Slot& slot) {
      for (int spins = 0; slot.reading.load(std::memory_order_seq_cst) == this; ++spins) backoff(spins);
    });
  }

  static void backoff(int spins) {
    if (spins < kSpinsBeforeYield) {
      pause();
    } else {
      std::this_thread::yield();
    }
  }

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<uint32_t> state_{0};
};

}  // namespace gravity
