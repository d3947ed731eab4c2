// The shard lock (spin_lock.h): writers exclude everyone, readers exclude writers, whether a
// reader holds a per-thread slot or, with all slots taken, counts itself in the lock word. Meant
// to run under TSan (a reader overlapping a writer is a reported race on the guarded pair) as well
// as plain, where the pair's two halves must always agree.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "check.h"
#include "store/spin_lock.h"

using gravity::ReaderSlots;
using gravity::SpinLock;

namespace {

// Two counters a writer always moves together under the lock; a reader must never see them apart.
struct Guarded {
  SpinLock lock;
  uint64_t a = 0;
  uint64_t b = 0;
};

// `readers` threads read and `writers` threads write `rounds` times each; returns the torn reads.
uint64_t hammer(Guarded& g, int readers, int writers, int rounds) {
  std::atomic<uint64_t> torn{0};
  std::atomic<int> ready{0};
  const int threads = readers + writers;
  std::vector<std::thread> all;
  for (int t = 0; t < threads; ++t) {
    all.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      for (int i = 0; i < rounds; ++i) {
        if (t < readers) {
          g.lock.lock_shared();
          if (g.a != g.b) torn.fetch_add(1);
          g.lock.unlock_shared();
        } else {
          std::lock_guard<SpinLock> hold(g.lock);
          ++g.a;
          ++g.b;
        }
      }
    });
  }
  for (std::thread& th : all) th.join();
  return torn.load();
}

TEST(readers_never_see_a_writer_half_done) {
  Guarded g;
  CHECK_EQ(hammer(g, 3, 2, 20000), 0u);
  CHECK_EQ(g.a, 40000u);
  CHECK_EQ(g.b, 40000u);
}

TEST(readers_without_a_slot_count_themselves_in) {
  // Every slot is held by a parked thread, so the hammering threads take none.
  std::atomic<bool> release{false};
  std::atomic<size_t> parked{0};
  std::vector<std::thread> holders;
  for (size_t i = 0; i < ReaderSlots::kSlots; ++i) {
    holders.emplace_back([&] {
      SpinLock mine;
      mine.lock_shared();  // takes this thread's slot
      mine.unlock_shared();
      parked.fetch_add(1);
      while (!release.load()) std::this_thread::yield();
    });
  }
  while (parked.load() < ReaderSlots::kSlots) std::this_thread::yield();
  Guarded g;
  CHECK_EQ(hammer(g, 2, 2, 5000), 0u);
  CHECK_EQ(g.a, 10000u);
  release.store(true);
  for (std::thread& th : holders) th.join();
}

TEST(try_lock_fails_while_a_reader_holds_the_lock) {
  SpinLock lock;
  lock.lock_shared();
  std::atomic<bool> taken{true};
  std::thread other([&] { taken.store(lock.try_lock()); });
  other.join();
  CHECK(!taken.load());
  lock.unlock_shared();
  CHECK(lock.try_lock());
  lock.unlock();
}

TEST(a_writer_waits_for_a_reader_to_leave) {
  SpinLock lock;
  std::atomic<int> step{0};
  lock.lock_shared();
  std::thread writer([&] {
    lock.lock();
    step.store(1);  // only after the reader left
    lock.unlock();
  });
  // The writer cannot get in while we read; it stays at step 0 however long we hold.
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  CHECK_EQ(step.load(), 0);
  lock.unlock_shared();
  writer.join();
  CHECK_EQ(step.load(), 1);
}

}  // namespace

RUN_TESTS("spin_lock_test")
