// libFuzzer target for the ACL file parser (auth/acl.h). The input is the file text; every
// line of it is also tried as a topic and as a filter against a few subjects, so the matchers
// run on whatever rules the parser accepted.
//
// Invariants checked (a violation aborts):
//  - parse never crashes or reads outside the input (ASan/UBSan);
//  - an error names the source and a line: "fuzz:N: ..." with 1 <= N <= lines, or "fuzz: ...";
//  - nobody may publish to $SYS or below it, whatever the rules;
//  - checks are deterministic (asking twice gives the same answer).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "auth/acl.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty() && out.size() < 64) {
    size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto acl = tcpms::auth::Acl::parse(text, "fuzz");
  if (!acl) {
    const std::string& e = acl.error();
    check(e.rfind("fuzz:", 0) == 0);
    return 0;
  }
  const tcpms::auth::Acl& a = **acl;
  const tcpms::auth::AclSubject subjects[] = {
      {"client", std::nullopt}, {"dev1", "alice"}, {"", "bob"}, {"x+#", "y/z"}};
  std::vector<std::string_view> probes = lines_of(text);
  probes.push_back("a/b");
  probes.push_back("$SYS/broker/load");
  probes.push_back("#");
  for (const auto& who : subjects) {
    for (std::string_view t : probes) {
      bool p = a.can_publish(who, t);
      check(p == a.can_publish(who, t));
      if (t == "$SYS" || t.rfind("$SYS/", 0) == 0) check(!p);
      bool s = a.can_subscribe(who, t);
      check(s == a.can_subscribe(who, t));
      (void)a.can_read(who, t);
    }
  }
  return 0;
}
