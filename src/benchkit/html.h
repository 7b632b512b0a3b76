// Escaping for text placed into the HTML report (element content and attribute values alike).
#pragma once

#include <string>
#include <string_view>

namespace tcpms::bench {

// Replaces & < > " ' with entities, so any text (workload names, parameters, failure causes)
// is shown as text and can never open a tag or end an attribute.
std::string html_escape(std::string_view text);

}  // namespace tcpms::bench
