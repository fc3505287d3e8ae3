// Errors as values: a Status is success or an errno with a message naming the
// problem; Result<T> is a T or such an error. Nothing in the engine throws
// across a lock; allocation failures are turned into ENOMEM where they occur.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace cgcore {

class [[nodiscard]] Status {
 public:
  Status() = default;  // success
  static Status Ok() { return Status(); }
  static Status Error(int err, std::string message) {
    return Status(err, std::move(message));
  }

  bool ok() const { return err_ == 0; }
  explicit operator bool() const { return ok(); }
  // The errno (0 on success).
  int err() const { return err_; }
  const std::string& message() const { return message_; }

 private:
  Status(int err, std::string message) : err_(err), message_(std::move(message)) {}
  int err_ = 0;
  std::string message_;
};

// A value of type T, or an error Status (never an ok Status).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) {}  // NOLINT: REQUIRES !error.ok()

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& value() const& { return std::get<T>(v_); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  // The error; Status::Ok() when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  int err() const { return ok() ? 0 : std::get<Status>(v_).err(); }

 private:
  std::variant<T, Status> v_;
};

// The symbolic name of an errno ("EBUSY"), or "E<number>" for unknown ones.
const char* errno_name(int err);

}  // namespace cgcore
