// The cgsh interpreter: its language, output formats and exit status,
// driven through tools/cgsh/shell.h with strings.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tools/cgsh/shell.h"

namespace cgcore::cgsh {
namespace {

std::string run(std::string_view script, int* status, Options options = {},
                Interpreter::Fixed fixed = {}) {
  return run_script(script, options, status, fixed);
}

TEST(Cgsh, CommandsPrintTheirOutput) {
  int status = -1;
  std::string out = run("mkdir /pids/a\nspawn A\necho $A > /pids/a/cgroup.procs\n"
                        "cat /pids/a/tasks\nls /pids/a\ncgroup $A\n",
                        &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out,
            "2\n"
            "cgroup.clone_children\ncgroup.procs\nnotify_on_release\npids.current\npids.events\n"
            "pids.max\npids.peak\ntasks\n"
            "7:memrlimit:/\n6:numtasks:/\n5:pids:/a\n4:memory:/\n3:cpuacct:/\n2:cpu:/\n1:cpuset:/\n0::/\n");
}

TEST(Cgsh, AFailedCommandPrintsOneErrorLineAndGoesOn) {
  int status = -1;
  std::string out = run("mkdir /pids/a\nmkdir /pids/a\necho after\n", &status);
  EXPECT_EQ(status, 1);
  // One line "error: ENAME: message" (the message is the engine's), then on.
  EXPECT_EQ(out.substr(0, 15), "error: EEXIST: ") << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_EQ(out.substr(out.size() - 6), "after\n") << out;
}

TEST(Cgsh, ErrorLinesUseErrnoNames) {
  int status = -1;
  EXPECT_EQ(run("rmdir /pids/x\n", &status).substr(0, 15), "error: ENOENT: ");
  EXPECT_EQ(run("frob\n", &status), "error: EINVAL: unknown command 'frob' (try help)\n");
  EXPECT_EQ(run("echo $X\n", &status), "error: EINVAL: unknown variable $X\n");
  EXPECT_EQ(status, 1);
}

TEST(Cgsh, UsageErrorsComeFromTheSynopsis) {
  int status = -1;
  EXPECT_EQ(run("cat\n", &status), "error: EINVAL: usage: cat PATH\n");
  EXPECT_EQ(run("ls / /\n", &status), "error: EINVAL: usage: ls [PATH]\n");
  EXPECT_EQ(run("check now\n", &status), "error: EINVAL: usage: check\n");
  EXPECT_EQ(run("kill\n", &status), "error: EINVAL: usage: kill $P\n");
  // Not a NAME to bind.
  EXPECT_EQ(run("fork 9 1\n", &status), "error: EINVAL: usage: fork NAME $P\n");
  // Usage errors a handler finds itself.
  EXPECT_EQ(run("echo x > a b\n", &status), "error: EINVAL: usage: echo [-n] TEXT [> PATH]\n");
  EXPECT_EQ(run("inject free 1\n", &status), "error: EINVAL: usage: inject alloc N\n");
  EXPECT_EQ(run("spawn A --foo 1\n", &status),
            "error: EINVAL: usage: spawn NAME [--uid U] [--gid G] [--suid S] [--parent $P]\n");
  EXPECT_EQ(run("as 0 --pid 1\n", &status),
            "error: EINVAL: usage: as UID[:GID] [--pid $P] COMMAND...\n");
  EXPECT_EQ(status, 1);
}

TEST(Cgsh, HelpListsEachCommandOnce) {
  int status = -1;
  std::string help = run("help\n", &status);
  EXPECT_EQ(status, 0);
  std::vector<std::string> names;
  for (size_t pos = 0; pos < help.size();) {
    size_t end = help.find('\n', pos);
    std::string line = help.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == ' ') continue;  // a summary on a line of its own
    names.push_back(line.substr(0, line.find(' ')));
  }
  for (const char* expected : {"mkdir", "rmdir", "mv", "ls", "cat", "echo", "chown", "chmod",
                               "spawn", "fork", "thread", "exit", "kill", "exec", "charge",
                               "uncharge", "mmap", "munmap", "move", "transfer", "inject", "as",
                               "cgroup", "cgroups", "tree", "check", "assert", "help"})
    EXPECT_EQ(std::count(names.begin(), names.end(), expected), 1) << expected << "\n" << help;
  for (const std::string& name : names) {
    if (name == "assert") continue;  // an assert line is not a command
    EXPECT_EQ(run(name + "\n", &status).find("unknown command"), std::string::npos) << name;
  }
}

TEST(Cgsh, AssertionsHoldSilently) {
  int status = -1;
  std::string out = run("spawn A\n"
                        "assert cat /pids/tasks == 1\\n$A\n"
                        "assert mkdir /pids/a ok\n"
                        "assert mkdir /pids/a fails EEXIST\n"
                        "assert fork B $A fails EWOULDBLOCK\n",  // not refused: an alias of EAGAIN
                        &status);
  EXPECT_EQ(out,
            "assertion failed: line 5: fork B 2: expected EWOULDBLOCK, got success\n");
  EXPECT_EQ(status, 1);
  out = run("spawn A\nassert cat /pids/tasks == 1\\n$A\nassert check ok\n", &status);
  EXPECT_EQ(out, "");
  EXPECT_EQ(status, 0);
}

TEST(Cgsh, AssertionFailureMessages) {
  int status = -1;
  EXPECT_EQ(run("assert cat /pids/tasks == 2\n", &status),
            "assertion failed: line 1: cat /pids/tasks: expected \"2\", got \"1\"\n");
  EXPECT_EQ(run("\n# c\nassert mkdir /pids/a fails EBUSY\n", &status),
            "assertion failed: line 3: mkdir /pids/a: expected EBUSY, got success\n");
  EXPECT_EQ(run("assert rmdir /pids/a ok\n", &status).substr(0, 71),
            "assertion failed: line 1: rmdir /pids/a: expected success, got ENOENT (");
  EXPECT_EQ(run("assert cat /pids/nope == x\n", &status).substr(0, 60),
            "assertion failed: line 1: cat /pids/nope: expected \"x\", got ");
  EXPECT_EQ(run("assert mkdir /pids/a fails ENOTANERRNO\n", &status),
            "assertion failed: line 1: unknown errno name 'ENOTANERRNO'\n");
  EXPECT_EQ(run("assert mkdir /pids/a\n", &status),
            "assertion failed: line 1: usage: assert COMMAND... (== TEXT | fails ERRNO | ok)\n");
  EXPECT_EQ(status, 1);
}

TEST(Cgsh, ExpectedTextIsVerbatimWithEscapes) {
  int status = -1;
  EXPECT_EQ(run("assert echo 'a#b  c' == a#b  c\n"
                "assert echo \"  x\" == \"  x\"\n"
                "assert cat /pids/cgroup.procs == 1\n"
                "assert echo tab == t\\x61b\n",
                &status),
            "assertion failed: line 4: echo tab: expected \"t\\\\x61b\", got \"tab\"\n");
}

TEST(Cgsh, ReleaseAgentRunsArePrintedWithTheCommand) {
  int status = -1;
  std::string out = run("echo /bin/agent > /pids/release_agent\n"
                        "mkdir /pids/a\n"
                        "echo 1 > /pids/a/notify_on_release\n"
                        "spawn P\n"
                        "echo $P > /pids/a/cgroup.procs\n"
                        "kill $P\n"
                        "mkdir /pids/a/b\n"
                        "assert rmdir /pids/a/b == release_agent /bin/agent /a\n",
                        &status);
  EXPECT_EQ(out, "release_agent /bin/agent /a\n");
  EXPECT_EQ(status, 0);
}

TEST(Cgsh, DirectivesChooseTheLayoutUnlessFixed) {
  int status = -1;
  EXPECT_EQ(run("# layout: v2\n# cpus: 8\nls /cgroup.procs\ncat /cpuset.cpus.effective\n", &status),
            "/cgroup.procs\n0-7\n");
  EXPECT_EQ(status, 0);
  Options opts;
  opts.layout = "hybrid";
  EXPECT_EQ(run("# layout: v2\nls /cgroup.procs\n", &status, opts, {.layout = true}).substr(0, 15),
            "error: ENOENT: ");
  // After the first command, a directive is only a comment.
  EXPECT_EQ(run("ls /unified/cgroup.procs\n# layout: v2\nls /unified/cgroup.procs\n", &status),
            "/unified/cgroup.procs\n/unified/cgroup.procs\n");
}

TEST(Cgsh, ABadLayoutStopsTheShell) {
  int status = -1;
  std::string out = run("# layout: bogus\nls /\nls /\n", &status);
  EXPECT_EQ(out.substr(0, 30), "error: EINVAL: layout 'bogus':");
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(status, 2);
  run("# cpus: many\nls /\n", &status);
  EXPECT_EQ(status, 2);
}

TEST(Cgsh, VariablesNameIds) {
  Interpreter in(Options{}, {});
  EXPECT_EQ(in.feed("spawn A"), "");
  EXPECT_EQ(in.feed("thread T $A"), "");
  EXPECT_EQ(in.feed("fork C $T"), "");
  ASSERT_NE(in.shell(), nullptr);
  EXPECT_EQ(in.shell()->var("A"), 2);
  EXPECT_EQ(in.shell()->var("T"), 3);
  EXPECT_EQ(in.shell()->var("C"), 4);
  EXPECT_EQ(in.shell()->var("Z"), std::nullopt);
  EXPECT_EQ(in.feed("echo ${A}x$T"), "2x3\n");
  EXPECT_EQ(in.exit_status(), 0);
}

TEST(Cgsh, AsUsesThoseCredentials) {
  int status = -1;
  EXPECT_EQ(run("mkdir /pids/a\n"
                "assert as 1000 mkdir /pids/a/b fails EACCES\n"
                "chown 1000:1000 /pids/a\n"
                "assert as 1000 mkdir /pids/a/b ok\n"
                "assert as 1000:5 mkdir /pids/a/c ok\n"
                "spawn P --uid 1000\n"
                "chmod 666 /pids/a/b/cgroup.procs\n"
                "assert as 1000 --pid $P echo 0 > /pids/a/b/cgroup.procs ok\n"
                "assert cat /pids/a/b/cgroup.procs == $P\n",
                &status),
            "");
  EXPECT_EQ(status, 0);
}

TEST(Cgsh, TreeShowsTasksSorted) {
  int status = -1;
  EXPECT_EQ(run("# layout: v2\nmkdir /b\nmkdir /a\nmkdir /a/x\nspawn P\nthread T $P\n"
                "echo $P > /a/x/cgroup.procs\ntree\ntree /a\n",
                &status),
            "/: 1\n  a\n    x: 2 3\n  b\n/a\n  x: 2 3\n");
}

TEST(Cgsh, OutputIsDeterministic) {
  const char* script =
      "mkdir /memory/m\nspawn A\nfork B $A\nthread T $B\nmove /memory/m $A $B\ncharge $B 5K\n"
      "cat /memory/m/memory.usage_in_bytes\ntree /memory\ncgroup $T\ninject alloc 1\n"
      "mkdir /memory/n\nmove /memory/n $A\ncheck\n";
  int s1 = -1, s2 = -1;
  std::string a = run(script, &s1), b = run(script, &s2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(s1, 1);  // the injected failure
  EXPECT_NE(a.find("error: ENOMEM"), std::string::npos) << a;
}

}  // namespace
}  // namespace cgcore::cgsh
