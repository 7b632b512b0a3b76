// Line-based stimulus/response: each "\n"-terminated line gets one answer line.
//   PING         -> PONG
//   ECHO <text>  -> <text>
//   UPPER <text> -> <TEXT>
//   QUIT         -> BYE, then the connection closes once that is sent
//   anything else -> ERR unknown command
// on_data answers every complete line and reports only those bytes as consumed; the engine
// keeps the partial last line (and only it) until the rest arrives. A line longer than
// kMaxLineBytes is refused before it can make the engine buffer more.
//   example_line_service --listen 127.0.0.1:7000
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "example_main.h"

namespace {

using namespace tcpms;

class LineService final : public Handler {
 public:
  static constexpr size_t kMaxLineBytes = 4096;

  DataResult on_data(Connection& conn, ByteView data) override {
    std::string_view in = as_chars(data);
    size_t consumed = 0;
    for (size_t eol; (eol = in.find('\n', consumed)) != std::string_view::npos;) {
      std::string_view line = in.substr(consumed, eol - consumed);
      consumed = eol + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!answer(conn, line)) return {consumed, Action::kCloseAfterFlush};
    }
    if (in.size() - consumed > kMaxLineBytes) {
      conn.enqueue(as_bytes("ERR line too long\n"));
      return {in.size(), Action::kCloseAfterFlush};
    }
    return {consumed, Action::kKeep};
  }

 private:
  // Queues the answer to one line (sent in one write per loop iteration); false on QUIT.
  static bool answer(Connection& conn, std::string_view line) {
    std::string_view verb = line.substr(0, line.find(' '));
    std::string_view arg = line.size() > verb.size() ? line.substr(verb.size() + 1) : "";
    std::string out;
    if (verb == "PING") {
      out = "PONG";
    } else if (verb == "ECHO") {
      out = arg;
    } else if (verb == "UPPER") {
      out = arg;
      std::transform(out.begin(), out.end(), out.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    } else if (verb == "QUIT") {
      conn.enqueue(as_bytes("BYE\n"));
      return false;
    } else {
      out = "ERR unknown command";
    }
    out += '\n';
    conn.enqueue(as_bytes(out));
    return true;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return tcpms::examples::serve(argc, argv,
                                [](tcpms::EventLoop&) { return std::make_unique<LineService>(); });
}
