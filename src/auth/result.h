// Result<T>: a value or an error message, for loaders and parsers that report why they failed
// ("FILE:LINE: why"). Not for the hot path; nothing here throws.
// Thread rules: a plain value type; share it the way you would share a T.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace tcpms::auth {

template <class T>
class Result {
 public:
  static Result ok(T value) { return Result(std::move(value), {}); }
  static Result fail(std::string why) { return Result(std::nullopt, std::move(why)); }

  explicit operator bool() const noexcept { return value_.has_value(); }
  bool has_value() const noexcept { return value_.has_value(); }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  // Empty when has_value().
  const std::string& error() const noexcept { return error_; }

 private:
  Result(std::optional<T> v, std::string e) : value_(std::move(v)), error_(std::move(e)) {}
  std::optional<T> value_;
  std::string error_;
};

}  // namespace tcpms::auth
