// Whole-file reads and atomic replacement for the password and ACL files.
// Thread rules: plain blocking file I/O; call from main or a worker thread, never a loop thread.
#pragma once

#include <string>
#include <sys/types.h>

#include "auth/result.h"

namespace tcpms::auth {

// The file's bytes; the error names the file and the reason ("FILE: No such file or directory").
// Files over 64 MiB are refused: a password or ACL file that size is a mistake.
Result<std::string> read_text_file(const std::string& path);

// Writes `contents` to a temporary file beside `path` (mkstemp, so never an existing file),
// sets `mode`, fsyncs, renames it over `path` and fsyncs the directory: readers see the old
// file or the new one, never half of either. If `path` is a symlink, its target is replaced.
// Returns an empty string on success, otherwise "FILE: why".
std::string write_file_atomic(const std::string& path, const std::string& contents,
                              mode_t mode = 0600);

}  // namespace tcpms::auth
