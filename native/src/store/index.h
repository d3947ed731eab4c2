// A shard's key index: an intrusive chained hash table. Items chain through Item::hash_next and
// keep a 32-bit tag of their hash in Item::hash, so a lookup compares tags before keys and growing
// never rehashes a key. The bucket array doubles when the items outnumber twice its buckets (load
// factor <= 2; memcached's is 1.5), so it costs at most 8 bytes per item after a doubling.
// Hashes given here are widened tags (widen_hash_tag): the bucket is the tag's low bits; the shard
// is chosen by the key hash's top bits (store.cc), so the two never correlate. Every call is made
// with the shard lock held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "item.h"

namespace gravity {

class Index {
 public:
  static constexpr size_t kInitialBuckets = 256;
  static constexpr size_t kMaxLoad = 2;

  // Bytes of the bucket array once `count` items are linked (it never shrinks).
  size_t bytes_for(size_t count) const {
    size_t buckets = buckets_.size();
    while (count > kMaxLoad * buckets) buckets *= 2;
    return buckets * sizeof(Item*);
  }

  Index() : buckets_(kInitialBuckets, nullptr) {}

  size_t size() const { return count_; }
  size_t bucket_count() const { return buckets_.size(); }

  Item* find(uint64_t hash, std::string_view key) const {
    const uint32_t tag = static_cast<uint32_t>(hash);
    for (Item* it = buckets_[tag & mask()]; it != nullptr; it = it->hash_next) {
      if (it->hash.tag == tag && it->key() == key) return it;
    }
    return nullptr;
  }

  // The first item with this hash tag for which match(item) holds, without comparing keys: for
  // the policy's access buffer, where a collision of two keys' 32-bit tags only misattributes one
  // access, and the expiry wheel, which also matches the expiry time.
  template <class Match>
  Item* find_hash(uint64_t hash, Match match) const {
    const uint32_t tag = static_cast<uint32_t>(hash);
    for (Item* it = buckets_[tag & mask()]; it != nullptr; it = it->hash_next) {
      if (it->hash.tag == tag && match(it)) return it;
    }
    return nullptr;
  }
  Item* find_hash(uint64_t hash) const {
    return find_hash(hash, [](const Item*) { return true; });
  }

  // The caller has checked that no item with this key is present.
  void insert(Item* item) {
    Item*& head = buckets_[item->hash.tag & mask()];
    item->hash_next = head;
    head = item;
    if (++count_ > kMaxLoad * buckets_.size()) grow();
  }

  // Unchains a present item.
  void erase(Item* item) {
    Item** slot = &buckets_[item->hash.tag & mask()];
    while (*slot != item) slot = &(*slot)->hash_next;
    *slot = item->hash_next;
    item->hash_next = nullptr;
    --count_;
  }

  // Calls dead(item) for each item in `count` buckets starting at *cursor (wrapping), unchaining
  // the items it returns true for and then passing each of them to drop(item). Advances *cursor.
  // drop() may free the item but must not touch the index.
  template <class Dead, class Drop>
  void sweep(size_t* cursor, size_t count, Dead dead, Drop drop) {
    if (count > buckets_.size()) count = buckets_.size();
    for (size_t i = 0; i < count; ++i) {
      size_t b = (*cursor + i) & mask();
      Item** slot = &buckets_[b];
      while (*slot != nullptr) {
        Item* it = *slot;
        if (dead(it)) {
          *slot = it->hash_next;
          it->hash_next = nullptr;
          --count_;
          drop(it);
        } else {
          slot = &it->hash_next;
        }
      }
    }
    *cursor = (*cursor + count) & mask();
  }

  // Calls f(item) for each item chained in bucket b (< bucket_count()). f must not change the index.
  template <class F>
  void for_each_in_bucket(size_t b, F f) const {
    for (Item* it = buckets_[b]; it != nullptr; it = it->hash_next) f(it);
  }

  // Unchains every item, passing each to drop(item) (which may free it).
  template <class Drop>
  void clear(Drop drop) {
    for (Item*& head : buckets_) {
      Item* it = head;
      head = nullptr;
      while (it != nullptr) {
        Item* next = it->hash_next;
        it->hash_next = nullptr;
        drop(it);
        it = next;
      }
    }
    count_ = 0;
  }

 private:
  size_t mask() const { return buckets_.size() - 1; }

  void grow() {
    std::vector<Item*> bigger(buckets_.size() * 2, nullptr);
    size_t bigger_mask = bigger.size() - 1;
    for (Item* head : buckets_) {
      while (head != nullptr) {
        Item* next = head->hash_next;
        Item*& slot = bigger[head->hash.tag & bigger_mask];
        head->hash_next = slot;
        slot = head;
        head = next;
      }
    }
    buckets_.swap(bigger);
  }

  std::vector<Item*> buckets_;  // power-of-two size
  size_t count_ = 0;
};

}  // namespace gravity
