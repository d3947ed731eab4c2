// Exact LRU per shard: a doubly-linked list through Item::prev/next, most recent at the head,
// victims taken from the tail (memcached's per-class LRU before segmentation, items.c).
#include <memory>

#include "policy.h"

namespace gravity {
namespace {

class LruPolicy final : public EvictionPolicy {
 public:
  void added_locked(Item* item) override { push_front(item); }

  void accessed_locked(Item* item) override {
    if (item == head_) return;
    unlink(item);
    push_front(item);
  }

  void removed_locked(Item* item) override { unlink(item); }

  Item* victim_locked(const Item* protect, uint64_t incoming_cost) override {
    Item* victim = tail_;
    if (victim != nullptr && victim == protect) victim = victim->prev;
    return victim;
  }

 private:
  void push_front(Item* item) {
    item->prev = nullptr;
    item->next = head_;
    if (head_ != nullptr) head_->prev = item;
    head_ = item;
    if (tail_ == nullptr) tail_ = item;
  }

  void unlink(Item* item) {
    if (item->prev != nullptr) item->prev->next = item->next;
    else head_ = item->next;
    if (item->next != nullptr) item->next->prev = item->prev;
    else tail_ = item->prev;
    item->prev = nullptr;
    item->next = nullptr;
  }

  Item* head_ = nullptr;  // most recently used
  Item* tail_ = nullptr;  // least recently used: the next victim
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lru_policy() { return std::make_unique<LruPolicy>(); }

}  // namespace gravity
