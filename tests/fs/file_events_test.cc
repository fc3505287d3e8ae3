// FileEvents' two modes: only watched files (poll needs an open handle), or
// every change (inotify watchers hold none; set_record_unwatched).
#include "fs/file_events.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace cgcore::fs {
namespace {

using namespace std::chrono_literals;

TEST(FileEvents, UnwatchedChangesAreDroppedUnlessRecorded) {
  FileEvents ev;
  std::vector<uint64_t> got;
  ev.notify(7);
  ev.wait_take(got, 10ms);
  EXPECT_TRUE(got.empty());

  ev.set_record_unwatched(true);
  ev.notify(7);
  ev.notify(7);  // once until taken
  ev.notify(9);
  ev.wait_take(got, 1000ms);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<uint64_t>{7, 9}));
  EXPECT_EQ(ev.count(7), 0u);  // unwatched files are not counted
}

TEST(FileEvents, WatchedFilesCountInEitherMode) {
  FileEvents ev;
  ev.set_record_unwatched(true);
  const uint64_t seen = ev.watch(5);
  ev.notify(5);
  EXPECT_EQ(ev.count(5), seen + 1);
  std::vector<uint64_t> got;
  ev.wait_take(got, 1000ms);
  EXPECT_EQ(got, (std::vector<uint64_t>{5}));
  ev.unwatch(5);
}

}  // namespace
}  // namespace cgcore::fs
