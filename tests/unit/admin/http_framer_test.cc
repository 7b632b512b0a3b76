#include "admin/http_framer.h"

#include <string>

#include <gtest/gtest.h>

namespace tcpms::admin {
namespace {

FrameResult frame(std::string_view text, FramerLimits lim = {}) {
  FramerState st;
  return frame_request(text, st, lim);
}

// Feeds `text` one byte at a time, as a slow client would; returns the first result that is
// not kNeedMore (or the last one).
FrameResult frame_bytewise(std::string_view text, FramerLimits lim = {}, bool* saw_continue = nullptr) {
  FramerState st;
  FrameResult r;
  for (size_t n = 1; n <= text.size(); ++n) {
    r = frame_request(text.substr(0, n), st, lim);
    if (r.wants_continue && saw_continue) *saw_continue = true;
    if (r.status != FrameStatus::kNeedMore) return r;
  }
  return r;
}

TEST(HttpFramer, GetWithoutBodyEndsAtTheBlankLine) {
  std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  FrameResult r = frame(req + "GET /next");
  ASSERT_EQ(r.status, FrameStatus::kComplete);
  EXPECT_EQ(r.request_bytes, req.size());
  EXPECT_EQ(frame_bytewise(req).request_bytes, req.size());
  EXPECT_EQ(frame("GET / HTTP/1.1\r\nHost: x\r\n").status, FrameStatus::kNeedMore);
}

TEST(HttpFramer, ContentLengthBody) {
  std::string req = "POST /api/v1/publish HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  EXPECT_EQ(frame(req.substr(0, req.size() - 1)).status, FrameStatus::kNeedMore);
  FrameResult r = frame_bytewise(req);
  ASSERT_EQ(r.status, FrameStatus::kComplete);
  EXPECT_EQ(r.request_bytes, req.size());
}

TEST(HttpFramer, DeclaredBodyOverTheLimitIsRefusedBeforeItArrives) {
  FramerLimits lim;
  lim.max_body_bytes = 100;
  FrameResult r = frame("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", lim);
  ASSERT_EQ(r.status, FrameStatus::kError);
  EXPECT_EQ(r.http_status, 413);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\ncontent-length: 99999999999999999999\r\n\r\n").http_status, 400);
}

TEST(HttpFramer, ChunkedBodyIsFramedAndCountedAsItArrives) {
  std::string req = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
  FrameResult r = frame_bytewise(req);
  ASSERT_EQ(r.status, FrameStatus::kComplete) << r.reason;
  EXPECT_EQ(r.request_bytes, req.size());

  // The attack: a chunked body past the limit, sent in many chunks.
  FramerLimits lim;
  lim.max_body_bytes = 1000;
  std::string big = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) big += "64\r\n" + std::string(100, 'x') + "\r\n";
  r = frame(big, lim);
  ASSERT_EQ(r.status, FrameStatus::kError);
  EXPECT_EQ(r.http_status, 413);
  // One huge chunk is refused at its size line, before its data.
  r = frame("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n", lim);
  EXPECT_EQ(r.http_status, 413);
  // Framing overhead is bounded too: one-byte chunks with long extensions.
  std::string padded = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 200; ++i) padded += "1;" + std::string(1000, 'e') + "\r\nx\r\n";
  r = frame(padded, lim);
  ASSERT_EQ(r.status, FrameStatus::kError);
  EXPECT_EQ(r.http_status, 413);
}

TEST(HttpFramer, BadChunkFramingIsA400) {
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").http_status, 400);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n").http_status, 400);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n").http_status, 400);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(2000, '1')).http_status, 400);
}

TEST(HttpFramer, AmbiguousFramingIsRefused) {
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n").http_status, 400);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").http_status, 400);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc").status,
            FrameStatus::kComplete);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").http_status, 501);
  EXPECT_EQ(frame("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").http_status, 400);
}

TEST(HttpFramer, HeadOverTheLimitIsA431EvenWithoutItsEnd) {
  FramerLimits lim;
  lim.max_head_bytes = 64;
  std::string head = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a');
  FrameResult r = frame_bytewise(head, lim);
  ASSERT_EQ(r.status, FrameStatus::kError);
  EXPECT_EQ(r.http_status, 431);
}

TEST(HttpFramer, ExpectContinueIsReportedOnceTheHeadIsComplete) {
  bool saw = false;
  std::string req = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok";
  FrameResult r = frame_bytewise(req, {}, &saw);
  EXPECT_TRUE(saw);
  EXPECT_EQ(r.status, FrameStatus::kComplete);
  // Not for a request without a body.
  EXPECT_FALSE(frame("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").wants_continue);
}

TEST(HttpFramer, FindHeaderIsCaseInsensitiveAndTrims) {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\nauthorization:   Bearer T  \r\n\r\n";
  HeaderValue v = find_header(head, "Authorization");
  ASSERT_NE(v.at, std::string_view::npos);
  EXPECT_EQ(head.substr(v.at, v.size), "Bearer T");
  EXPECT_EQ(find_header(head, "Cookie").at, std::string_view::npos);
}

}  // namespace
}  // namespace tcpms::admin
