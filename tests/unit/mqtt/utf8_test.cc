// UTF-8 Encoded Strings: [MQTT-1.5.3-1..3] (3.1.1), [MQTT-1.5.4-1..3] (5.0).
#include <gtest/gtest.h>

#include <string>

#include "mqtt/utf8.h"

namespace tcpms::mqtt {
namespace {

Utf8Status check(std::string_view s) { return validate_utf8(s); }

TEST(Utf8, AcceptsAsciiAndMultibyte) {
  EXPECT_EQ(check(""), Utf8Status::kValid);
  EXPECT_EQ(check("sensors/room-1/temperature"), Utf8Status::kValid);
  EXPECT_EQ(check("caf\xC3\xA9"), Utf8Status::kValid);                 // U+00E9
  EXPECT_EQ(check("\xE2\x82\xAC"), Utf8Status::kValid);                // U+20AC
  EXPECT_EQ(check("\xED\x9F\xBF"), Utf8Status::kValid);                // U+D7FF, below surrogates
  EXPECT_EQ(check("\xEE\x80\x80"), Utf8Status::kValid);                // U+E000, above them
  EXPECT_EQ(check("\xF4\x8F\xBF\xBF"), Utf8Status::kValid);            // U+10FFFF
}

TEST(Utf8, SpecExampleAWithCjkCharacter) {
  // 3.1.1 §1.5.3 non-normative example: "A𪛔" (U+0041, U+2A6D4) = 41 F0 AA 9B 94.
  EXPECT_EQ(check("\x41\xF0\xAA\x9B\x94"), Utf8Status::kValid);
}

TEST(Utf8, NullCharacterIsRejected) {
  // [MQTT-1.5.3-2] / [MQTT-1.5.4-2]
  EXPECT_EQ(check(std::string_view("a\0b", 3)), Utf8Status::kNullCharacter);
  EXPECT_EQ(check(std::string_view("\0", 1)), Utf8Status::kNullCharacter);
}

TEST(Utf8, NullInsideTheEightByteFastPathIsFound) {
  for (std::size_t pos = 0; pos < 24; ++pos) {
    std::string s(24, 'x');
    s[pos] = '\0';
    EXPECT_EQ(check(s), Utf8Status::kNullCharacter) << pos;
  }
}

TEST(Utf8, HighByteInsideTheFastPathIsChecked) {
  for (std::size_t pos = 0; pos < 24; ++pos) {
    std::string s(24, 'x');
    s[pos] = '\xFF';
    EXPECT_EQ(check(s), Utf8Status::kIllFormed) << pos;
  }
}

TEST(Utf8, SurrogatesAreRejected) {
  // [MQTT-1.5.3-1]: no code points U+D800..U+DFFF.
  EXPECT_EQ(check("\xED\xA0\x80"), Utf8Status::kIllFormed);  // U+D800
  EXPECT_EQ(check("\xED\xBF\xBF"), Utf8Status::kIllFormed);  // U+DFFF
  EXPECT_EQ(check("\xED\xA0\xBD\xED\xB8\x80"), Utf8Status::kIllFormed);  // CESU-8 pair
}

TEST(Utf8, NonShortestFormsAreRejected) {
  EXPECT_EQ(check("\xC0\x80"), Utf8Status::kIllFormed);          // overlong U+0000
  EXPECT_EQ(check("\xC1\xBF"), Utf8Status::kIllFormed);          // overlong U+007F
  EXPECT_EQ(check("\xE0\x80\xAF"), Utf8Status::kIllFormed);      // overlong '/'
  EXPECT_EQ(check("\xE0\x9F\xBF"), Utf8Status::kIllFormed);      // overlong U+07FF
  EXPECT_EQ(check("\xF0\x80\x80\xAF"), Utf8Status::kIllFormed);  // overlong '/'
  EXPECT_EQ(check("\xF0\x8F\xBF\xBF"), Utf8Status::kIllFormed);  // overlong U+FFFF
}

TEST(Utf8, OutOfRangeAndBadBytesAreRejected) {
  EXPECT_EQ(check("\xF4\x90\x80\x80"), Utf8Status::kIllFormed);  // U+110000
  EXPECT_EQ(check("\xF5\x80\x80\x80"), Utf8Status::kIllFormed);
  EXPECT_EQ(check("\xFF"), Utf8Status::kIllFormed);
  EXPECT_EQ(check("\x80"), Utf8Status::kIllFormed);              // lone continuation
  EXPECT_EQ(check("a\xBF"), Utf8Status::kIllFormed);
}

TEST(Utf8, TruncatedSequencesAreRejected) {
  EXPECT_EQ(check("\xC3"), Utf8Status::kIllFormed);
  EXPECT_EQ(check("\xE2\x82"), Utf8Status::kIllFormed);
  EXPECT_EQ(check("\xF0\xAA\x9B"), Utf8Status::kIllFormed);
  EXPECT_EQ(check("\xE2\x28\xA1"), Utf8Status::kIllFormed);      // bad continuation
  EXPECT_EQ(check("\xF0\xAA\x9B\x41"), Utf8Status::kIllFormed);
}

TEST(Utf8, ByteOrderMarkIsValidAndNotStripped) {
  // [MQTT-1.5.3-3]: 0xEF 0xBB 0xBF is U+FEFF wherever it appears; validation passes and the
  // codec returns views, so nothing can strip it.
  EXPECT_EQ(check("\xEF\xBB\xBF" "a/b"), Utf8Status::kValid);
}

TEST(Utf8, DiscouragedCodePoints) {
  EXPECT_FALSE(has_discouraged_code_points("plain/topic \xC3\xA9"));
  EXPECT_TRUE(has_discouraged_code_points("tab\there"));        // U+0009
  EXPECT_TRUE(has_discouraged_code_points("\x7F"));             // DEL
  EXPECT_TRUE(has_discouraged_code_points("\xC2\x85"));         // U+0085
  EXPECT_TRUE(has_discouraged_code_points("\xEF\xBF\xBF"));     // U+FFFF
  EXPECT_TRUE(has_discouraged_code_points("\xEF\xB7\x90"));     // U+FDD0
  EXPECT_FALSE(has_discouraged_code_points("\xC2\xA0"));        // U+00A0 is fine
}

}  // namespace
}  // namespace tcpms::mqtt
