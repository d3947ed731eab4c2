// W-TinyLFU (Einziger, Eytan, Friedman, Manes, "Adaptive Software Cache Management"; the design of
// Caffeine): a small LRU window in front of a segmented-LRU main space, with TinyLFU's frequency
// estimate (frequency.h) deciding which items may enter the main space.
//
//   new item ──> window (LRU, 1-100% of bytes) ──tail──> candidate ─┐
//                                                               ├─ duel: higher frequency stays
//   main: probation (20%) <──demote── protected (80%)           │
//         └──tail──> victim ────────────────────────────────────┘
//         probation hit ──promote──> protected
//
// Every new item enters the window, so a burst of new keys gets a chance to prove itself
// (recency), while the main space admits a window candidate only if the sketch says it is more
// popular than the item it would displace (frequency): a long one-time scan flows through the
// window and never pushes the hot set out. Budgets are in item-cost bytes; the store enforces the
// shard limit, so the segments' budgets only steer which item is the victim.
//
// The window's share is not fixed: a hill climber (climb()) moves it by the measured hit rate,
// toward recency (a bigger window) or frequency, whichever last raised the hit rate.
//
// Sizing: the sketch starts sized for limit_bytes / kAssumedItemBytes items (256 bytes, a typical
// small memcached item with its header) and grows with the shard's linked item count
// (FrequencyEstimator::ensure_capacity: a rare, amortised allocation under the shard lock when the
// count passes a power of two), so W follows the capacity in items. About 10 bytes per item
// (8 sketch, 2 doorkeeper), not charged against the shard's limit.
#include <cstdint>
#include <memory>

#include "frequency.h"
#include "policy.h"

namespace gravity {
namespace {

constexpr uint64_t kAssumedItemBytes = 256;
constexpr uint64_t kMinExpectedItems = 64;
// The window's initial and smallest share.
constexpr uint64_t kWindowPercent = 1;
constexpr uint64_t kProtectedPercent = 80;  // of the main space
// Hill climbing of the window's share, as Caffeine's BoundedLocalCache.climb (the "simple" climber
// of Einziger, Eytan, Friedman, Manes, Middleware 2018): after every sample period the window moves
// one step in the direction that last raised the hit rate, and reverses when the hit rate fell; a
// change of the hit rate by kRestartThreshold or more restarts the step at kStepPercent of the
// cache, a smaller one decays it by kStepDecay, so the split settles on a stable workload.
// The sample period is Caffeine's, 10 requests per cached item (the sketch's period W too).
// Measured on bench:hitratio (ARC trace P2 at 1% / 5% / 10% of its keys): the earlier period of
// one request per item saw the block traces' hit rate move by 5 points or more between samples
// in a third of the periods, and with a drop always stepping toward recency the window ratcheted
// to 70-100% (plain LRU): 5.5 / 26.0 / 42.8; with this climber 11.4 / 37.4 / 53.4 (ristretto
// 7.5 / 31.1 / 47.7).
constexpr double kStepPercent = 6.25;
constexpr double kRestartThreshold = 0.05;
constexpr double kStepDecay = 0.98;
constexpr uint64_t kSamplePeriodPerItem = 10;  // requests per sample period, per linked item
constexpr uint64_t kMinSampleRequests = 4096;
constexpr uint64_t kMaxWindowPercent = 100;   // at 100 the policy is an LRU
// The main victim is the least frequent of probation's kVictimSamples least recent items (the
// LRU one on ties), not just its LRU item: measured, +0.5-0.9 points on Zipf(0.99).
constexpr int kVictimSamples = 16;
constexpr int kTransfersPerAdd = 4;  // window items moved to probation per add after a shrink
// Caffeine's hash-flooding defence: an attacker who makes a victim look popular could otherwise
// keep every candidate out. A warm candidate (frequency >= 6) that does not beat the victim is
// still admitted with probability 1/128; a cold one (a one-hit wonder) never is. Ties reject.
constexpr uint32_t kWarmFrequency = 6;
constexpr uint64_t kRandomAdmitMask = 127;

enum Segment : uint8_t { kWindow = 0, kProbation = 1, kProtected = 2 };

uint64_t cost_of(const Item* item) { return item_cost(item->key_size, item->value_size); }

// An intrusive LRU list through Item::prev/next with the byte total of its items.
struct ItemList {
  Item* head = nullptr;  // most recently used
  Item* tail = nullptr;  // least recently used
  uint64_t bytes = 0;

  void push_front(Item* item) {
    item->prev = nullptr;
    item->next = head;
    if (head != nullptr) head->prev = item;
    head = item;
    if (tail == nullptr) tail = item;
    bytes += cost_of(item);
  }

  void unlink(Item* item) {
    if (item->prev != nullptr) item->prev->next = item->next;
    else head = item->next;
    if (item->next != nullptr) item->next->prev = item->prev;
    else tail = item->prev;
    item->prev = nullptr;
    item->next = nullptr;
    bytes -= cost_of(item);
  }

  // The least recently used item other than `skip`, or null.
  Item* tail_except(const Item* skip) const {
    return tail != nullptr && tail == skip ? tail->prev : tail;
  }
};

class TinyLfuPolicy final : public EvictionPolicy {
 public:
  explicit TinyLfuPolicy(uint64_t limit_bytes)
      : frequency_(expected_items(limit_bytes)),
        limit_bytes_(limit_bytes),
        window_budget_(limit_bytes * kWindowPercent / 100),
        main_budget_(limit_bytes - window_budget_),
        protected_budget_(main_budget_ * kProtectedPercent / 100),
        step_(-kStepPercent * static_cast<double>(limit_bytes) / 100) {}

  void record_access_locked(uint64_t hash) override {
    frequency_.record(hash);
    if (++sample_requests_ >= sample_period()) climb();
  }

  void added_locked(Item* item) override {
    frequency_.ensure_capacity(++items_);
    item->segment = kWindow;
    window_.push_front(item);
    // Items past the window's budget move to probation while the main space has room; once it is
    // full they wait at the window's tail for victim_locked() to duel them. After the climber
    // shrank the window, a few of its excess items also move per add without a duel (Caffeine's
    // decreaseWindow), so the shrink costs no pause; never the new item itself (an item bigger
    // than the window waits there for its duel).
    int transfers = 0;
    while (window_.bytes > window_budget_ && window_.tail != nullptr &&
           (fits_main(window_.tail) || (window_.tail != item && transfers++ < kTransfersPerAdd))) {
      move(window_.tail, kProbation);
    }
  }

  void accessed_locked(Item* item) override {
    ++sample_hits_;
    switch (item->segment) {
      case kWindow:
        window_.unlink(item);
        window_.push_front(item);
        break;
      case kProbation:
        move(item, kProtected);
        while (protected_.bytes > protected_budget_ && protected_.tail != nullptr) {
          move(protected_.tail, kProbation);
        }
        break;
      default:
        protected_.unlink(item);
        protected_.push_front(item);
        break;
    }
  }

  void removed_locked(Item* item) override {
    --items_;
    list(item->segment).unlink(item);
  }

  // The new item will enter the window; while it does not fit beside the window's items, the
  // window's LRU item is pushed out as the candidate for the main space and duels the main
  // victim here, before the room is made (Caffeine duels after the insert; same outcome). The new
  // item itself never duels on its way in: it is stored whatever its frequency, and competes when
  // it leaves the window. One bigger than the whole window pushes every other window item out,
  // then takes its room from the main victims, and waits alone in the window, over budget, until
  // the next insert pushes it out as a candidate (Caffeine would duel it at once and could evict
  // it before a client reads it back).
  Item* victim_locked(const Item* protect, uint64_t incoming_cost) override {
    for (;;) {
      const bool pushes_window = window_.bytes + incoming_cost > window_budget_;
      Item* candidate = pushes_window ? window_.tail_except(protect) : nullptr;
      Item* victim = main_victim(protect);
      if (candidate == nullptr) return victim != nullptr ? victim : window_.tail_except(protect);
      if (fits_main(candidate)) {  // the main space has room: no duel
        move(candidate, kProbation);
        continue;
      }
      if (victim == nullptr) return candidate;
      if (admits(candidate->hash, victim->hash)) {
        move(candidate, kProbation);
        return victim;
      }
      ++rejected_candidates_;
      return candidate;
    }
  }

  uint64_t rejected_candidates_locked() const override { return rejected_candidates_; }

  // Frequencies are estimates and the segments approximate recency anyway: a late or lost access
  // changes a duel's odds, not correctness (ristretto and Caffeine buffer reads the same way).
  bool tolerates_lossy_reads() const override { return true; }

 private:
  static uint64_t expected_items(uint64_t limit_bytes) {
    const uint64_t n = limit_bytes / kAssumedItemBytes;
    return n < kMinExpectedItems ? kMinExpectedItems : n;
  }

  uint64_t sample_period() const {
    const uint64_t period = items_ * kSamplePeriodPerItem;
    return period > kMinSampleRequests ? period : kMinSampleRequests;
  }

  // One hill-climbing step (Caffeine's determineAdjustment + increase/decreaseWindow). The window
  // grows into the main space, or gives budget back to it; the store evicts what no longer fits,
  // so only the budgets move here.
  void climb() {
    const double hit_rate = static_cast<double>(sample_hits_) / static_cast<double>(sample_requests_);
    const double change = hit_rate - previous_hit_rate_;
    const double limit = static_cast<double>(limit_bytes_);
    const double step = change >= 0 ? step_ : -step_;
    const bool restart = change >= kRestartThreshold || change <= -kRestartThreshold;
    step_ = restart ? (step >= 0 ? 1 : -1) * kStepPercent * limit / 100 : kStepDecay * step;
    // Not in Caffeine: a drop of kRestartThreshold or more also ages every estimate once, so keys
    // that were popular before the drop lose their lead in the duels a period W sooner.
    // Measured: P2 at 1% 9.2 -> 11.4, no other trace and capacity moved by more than 0.5 points.
    if (change <= -kRestartThreshold) frequency_.age();
    previous_hit_rate_ = hit_rate;
    sample_hits_ = 0;
    sample_requests_ = 0;
    const double min_window = limit * kWindowPercent / 100;
    const double max_window = limit * kMaxWindowPercent / 100;
    double window = static_cast<double>(window_budget_) + step;
    if (window < min_window) window = min_window;
    if (window > max_window) window = max_window;
    window_budget_ = static_cast<uint64_t>(window);
    main_budget_ = limit_bytes_ - window_budget_;
    protected_budget_ = main_budget_ * kProtectedPercent / 100;
    while (protected_.bytes > protected_budget_ && protected_.tail != nullptr) {
      move(protected_.tail, kProbation);
    }
  }

  ItemList& list(uint8_t segment) {
    return segment == kWindow ? window_ : segment == kProbation ? probation_ : protected_;
  }

  void move(Item* item, Segment to) {
    list(item->segment).unlink(item);
    item->segment = to;
    list(to).push_front(item);
  }

  bool fits_main(const Item* item) const {
    return probation_.bytes + protected_.bytes + cost_of(item) <= main_budget_;
  }

  Item* main_victim(const Item* protect) const {
    Item* victim = probation_.tail_except(protect);
    if (victim == nullptr) return protected_.tail_except(protect);
    uint32_t least = frequency_.estimate(victim->hash);
    int seen = 1;
    for (Item* item = victim->prev; item != nullptr && seen < kVictimSamples && least > 0;
         item = item->prev) {
      if (item == protect) continue;
      ++seen;
      const uint32_t estimate = frequency_.estimate(item->hash);
      if (estimate < least) {
        least = estimate;
        victim = item;
      }
    }
    return victim;
  }

  // TinyLFU admission: the candidate must be strictly more frequent than the victim.
  bool admits(uint64_t candidate_hash, uint64_t victim_hash) {
    const uint32_t candidate = frequency_.estimate(candidate_hash);
    const uint32_t victim = frequency_.estimate(victim_hash);
    if (candidate > victim) return true;
    if (candidate < kWarmFrequency) return false;
    return (next_random() & kRandomAdmitMask) == 0;
  }

  uint64_t next_random() {  // xorshift64 (Marsaglia): deterministic, so tests can replay
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    return random_;
  }

  FrequencyEstimator frequency_;
  ItemList window_, probation_, protected_;
  const uint64_t limit_bytes_;
  uint64_t window_budget_;     // bytes; moved by climb()
  uint64_t main_budget_;       // probation + protected
  uint64_t protected_budget_;
  uint64_t sample_requests_ = 0;  // lookups in this sample period
  uint64_t sample_hits_ = 0;      // of which hits (accessed_locked)
  double previous_hit_rate_ = 0;
  double step_;                   // bytes, signed: the next step of the window
  uint64_t items_ = 0;  // linked items; the sketch grows to cover them
  uint64_t rejected_candidates_ = 0;
  uint64_t random_ = 0x2545f4914f6cdd1dull;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_tinylfu_policy(uint64_t limit_bytes) {
  return std::make_unique<TinyLfuPolicy>(limit_bytes);
}

}  // namespace gravity
