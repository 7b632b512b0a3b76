// Umbrella header for the MQTT codec: #include "mqtt/codec.h".
// See docs/mqtt-codec.md for the API tour and which normative statements are enforced where.
#pragma once

#include "mqtt/decoder.h"        // decode_connect, decode_publish, ..., decode_packet
#include "mqtt/encoder.h"        // encoded_size / encode, encode_publish_header
#include "mqtt/fixed_header.h"   // decode_fixed_header, next_frame
#include "mqtt/packet.h"         // packet view structs
#include "mqtt/properties.h"     // 5.0 properties view
#include "mqtt/property_builder.h"
#include "mqtt/reason_codes.h"
#include "mqtt/result.h"
#include "mqtt/topic.h"          // topic validation and topic_matches
#include "mqtt/types.h"
#include "mqtt/utf8.h"
#include "mqtt/vbi.h"            // variable byte integers
