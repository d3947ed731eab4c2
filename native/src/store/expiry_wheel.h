// A shard's expiry schedule: a timing wheel of one-second buckets (Varghese and Lauck, "Hashed and
// Hierarchical Timing Wheels", scheme 4 with one level), so the background sweeper frees items
// within about a second of their expiry by visiting only the entries that are due, not the index.
//
//   add(hash, expires_at) ──> bucket[expires_at % kBuckets] += {hash, expires_at}
//   advance(now): for each second s in (swept_until, now], bucket[s % kBuckets]:
//       entry due (expires_at <= now) ──visit()──> Drop (freed, or stale: the item is gone or has
//                                                   another expiry now)
//       entry of a later lap (expires_at > now)  ──> Keep, in place
//
// Entries hold key hashes, not item pointers, so deleting, replacing or re-touching an item needs
// no wheel update: the old entry turns stale and is dropped when its second comes (the visitor
// checks the item's current expiry). Stale entries are bounded by compact(): the caller runs it
// when entries() exceeds twice the shard's items. Guarded by the shard lock.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gravity {

class ExpiryWheel {
 public:
  static constexpr uint32_t kBuckets = 256;  // seconds per lap; later expiries wait their lap in place

  struct Entry {
    uint64_t hash;
    int64_t expires_at;  // unix seconds
  };
  enum class Visit { Keep, Drop };


  size_t entries() const { return entries_; }

  // Schedules a check at expires_at (> 0). An expiry at or before the last swept second goes to
  // the next second to be swept, so an item that arrives already expired is freed at once too.
  void add(uint64_t hash, int64_t expires_at) {
    const int64_t second = expires_at > swept_until_ ? expires_at : swept_until_ + 1;
    buckets_[bucket_of(second)].push_back({hash, expires_at});
    ++entries_;
  }

  // Visits the entries due by `now`, second by second from where the last call stopped, calling
  // visit(entry) for each entry with expires_at <= now; stops after about max_entries visits
  // (at a bucket boundary or inside one, resuming there next time). Returns the entries visited.
  template <class Visitor>
  size_t advance(int64_t now, size_t max_entries, Visitor visit) {
    // The first call, a long pause or a test's clock jump: every bucket is due once, one lap.
    if (now - swept_until_ > static_cast<int64_t>(kBuckets)) {
      finish_partial_bucket();
      swept_until_ = now - kBuckets;
    }
    size_t visited = 0;
    while (swept_until_ < now && visited < max_entries) {
      std::vector<Entry>& bucket = buckets_[bucket_of(swept_until_ + 1)];
      while (position_ < bucket.size() && visited < max_entries) {
        const Entry entry = bucket[position_++];
        if (entry.expires_at > now) {
          bucket[kept_++] = entry;  // a later lap
          continue;
        }
        ++visited;
        if (visit(entry) == Visit::Keep) {
          bucket[kept_++] = entry;
        } else {
          --entries_;
        }
      }
      if (position_ < bucket.size()) break;  // out of budget inside this bucket
      bucket.resize(kept_);
      position_ = kept_ = 0;
      ++swept_until_;
    }
    return visited;
  }

  // Drops every entry for which live(entry) is false (the caller's test: the entry's item still
  // exists with this expiry) and duplicates (an item replaced by one with the same expiry).
  // Bounds the stale entries that deleted, replaced and re-touched items leave behind.
  template <class Live>
  void compact(Live live) {
    finish_partial_bucket();
    entries_ = 0;
    for (std::vector<Entry>& bucket : buckets_) {
      size_t out = 0;
      for (const Entry& entry : bucket) {
        if (live(entry)) bucket[out++] = entry;
      }
      bucket.resize(out);
      std::sort(bucket.begin(), bucket.end(), [](const Entry& a, const Entry& b) {
        return a.hash != b.hash ? a.hash < b.hash : a.expires_at < b.expires_at;
      });
      bucket.erase(std::unique(bucket.begin(), bucket.end(),
                               [](const Entry& a, const Entry& b) {
                                 return a.hash == b.hash && a.expires_at == b.expires_at;
                               }),
                   bucket.end());
      entries_ += bucket.size();
    }
  }

 private:
  // Closes the gap an interrupted advance() left in the bucket it was sweeping (entries before
  // kept_ stay, those from position_ on are still to visit); that bucket is then swept from its
  // start again, which only re-skips its later-lap entries.
  void finish_partial_bucket() {
    std::vector<Entry>& partial = buckets_[bucket_of(swept_until_ + 1)];
    partial.erase(partial.begin() + static_cast<std::ptrdiff_t>(kept_),
                  partial.begin() + static_cast<std::ptrdiff_t>(position_));
    position_ = kept_ = 0;
  }

  static uint32_t bucket_of(int64_t second) {
    return static_cast<uint32_t>(static_cast<uint64_t>(second) % kBuckets);
  }

  std::vector<Entry> buckets_[kBuckets];
  int64_t swept_until_ = 0;  // every second up to this one has been swept (0: none yet)
  size_t position_ = 0;  // inside the bucket of swept_until_ + 1: the next entry to look at
  size_t kept_ = 0;      // inside that bucket: entries before this index are kept
  size_t entries_ = 0;
};

}  // namespace gravity
