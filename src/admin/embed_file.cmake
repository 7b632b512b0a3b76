# cmake -DINPUT=file -DOUTPUT=header -DNAME=symbol -P embed_file.cmake
# Writes a header defining `inline constexpr std::string_view NAME` with INPUT's bytes, as a raw
# string literal (the delimiter must not occur in the file; checked).
file(READ "${INPUT}" content)
set(delim "tcpms_embed")
string(FIND "${content}" ")${delim}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )${delim}\"")
endif()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${INPUT} by embed_file.cmake; do not edit.\n#pragma once\n#include <string_view>\n"
  "inline constexpr std::string_view ${NAME} = R\"${delim}(${content})${delim}\";\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
