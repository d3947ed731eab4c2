#include "policy.h"

namespace gravity {

std::unique_ptr<EvictionPolicy> make_policy(std::string_view name, uint64_t limit_bytes) {
  if (name == "lru") return make_lru_policy();
  if (name == "tinylfu") return make_tinylfu_policy(limit_bytes);
  return nullptr;
}

}  // namespace gravity
