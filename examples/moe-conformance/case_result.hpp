// The outcome of one conformance case (a fixture folder), printed as one line by moe-conformance.
#pragma once

#include <string>

namespace moe::conformance {

struct CaseResult {
  std::string name;    // the fixture folder's name
  bool passed = false;
  std::string detail;  // one line: what was checked, or the first mismatch with the values seen
};

}  // namespace moe::conformance
