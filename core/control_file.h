// The description of one control file a controller adds to each cgroup.
//
// This is a descriptor, not I/O: the file layer (fs/) decides where the file
// appears, checks permissions, and moves bytes; the controller turns its
// state into text and text into state. Handlers are called with the engine's
// cgroup mutex held, so they see a stable hierarchy and may call the
// engine's *_locked helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace cgcore {

class Controller;
class Css;
class Engine;

enum class FileScope : uint8_t {
  kEverywhere,  // every cgroup with the controller, root included
  kRootOnly,    // only the hierarchy's root cgroup
  kNonRoot,     // every cgroup but the root
};

// Where a v1 event listener's notifications go (cgroup.event_control: the
// writer's eventfd in host mode). signal() neither blocks nor fails, and may
// run with any engine or controller lock held: an implementation that must
// do I/O queues it. Destroying the sink ends the listener (after the signals
// already given).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void signal() noexcept = 0;
};

// Which hierarchy kinds show the file.
enum FileVersions : uint8_t { kV1 = 1, kV2 = 2, kV1V2 = 3 };

struct ControlFileSpec {
  // The name after the controller's prefix: "max" for "pids.max". A name
  // that starts with '!' is taken as-is, without prefix.
  std::string_view name;
  uint8_t versions = kV1V2;
  FileScope scope = FileScope::kEverywhere;
  // Null handler = not readable / not writable (mode bits follow).
  Result<std::string> (*read)(Engine& engine, Css& css) = nullptr;
  // One write is one command; the text written is passed up to its first
  // NUL (handlers read a C string, as the kernel's do). A zero-length
  // write never reaches the handler.
  Status (*write)(Engine& engine, Css& css, std::string_view text) = nullptr;
  // The most one write may carry (the kernel's max_write_len of the file:
  // E2BIG beyond); null: a page. Asked once per controller, when a file
  // layer builds its table.
  size_t (*max_write)(const Controller& controller) = nullptr;
  // cgroup.event_control (v1): a write "EFD CFD ARGS" registers a listener.
  // The file layer resolves both descriptors in the writer's world (EBADF,
  // EINVAL for an EFD that is no eventfd), checks that CFD is a control
  // file of this very css that the writer may read (EINVAL, EACCES), and
  // then calls this with that file's full name ("memory.usage_in_bytes"),
  // the rest of the line and the sink, which the handler takes on success.
  // EINVAL for a file or ARGS it has no events for. The file's mode is 0200.
  Status (*register_event)(Engine& engine, Css& css, std::string_view control, std::string_view args,
                           std::unique_ptr<EventSink>& sink) = nullptr;
};

}  // namespace cgcore
