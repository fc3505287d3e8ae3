#!/usr/bin/env python3
"""Differential harness: the same operation traces against the host kernel's
cgroupfs and against a cgcorefs mount, comparing every read's text and every
error's errno.

Each trace runs in a fresh directory of one hierarchy on both sides
(/sys/fs/cgroup/<h>/cgdiff-<pid>/<n> and <mount>/<h>/cgdiff-<pid>/<n>), with
the same real processes (a process's membership in the kernel's cgroups and
in cgcore's are independent, so one `sleep` serves both sides).

Trace files (tests/differential/traces/*.trace) hold traces separated by
header lines:

    === NAME hierarchy=pids
    mkdir a
    write a/pids.max 10\\n
    read a/pids.max
    spawn P
    write a/cgroup.procs $P
    read a/cgroup.procs              # known: REASON   (a documented difference)

Operations (paths are relative to the trace's directory):
    mkdir P | rmdir P | rename P Q | read P | ls P | stat P
    write P TEXT      one write(2) of TEXT (\\n \\t \\s escapes; $VAR expands)
    as UID OP...      run the operation in a child with uid/gid UID
    chown P UID | chmod P MODE
    spawn VAR [N]     a real process with N threads (default 1); $VAR = pid,
                      $VAR.1 .. $VAR.N-1 = its other thread ids
    kill VAR          SIGKILL the process and reap it
Exit status: 0 when every operation matched (or is marked known), 1 on a
mismatch, 77 (skip) when the kernel's cgroups or FUSE are not usable here.
"""

import argparse
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
HIERARCHIES = ("pids", "cpuset", "memory", "unified")


def skip(msg):
    print(f"SKIP: {msg}")
    sys.exit(SKIP)


def unescape(text):
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\s", " ")


class Trace:
    def __init__(self, name, hierarchy, source):
        self.name, self.hierarchy, self.source = name, hierarchy, source
        self.ops = []  # (line number, op text, known reason or None)


def load_traces(paths):
    traces = []
    for path in paths:
        current = None
        with open(path) as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.rstrip("\n")
                if line.startswith("==="):
                    fields = line[3:].split()
                    opts = dict(f.split("=", 1) for f in fields[1:])
                    current = Trace(fields[0], opts.get("hierarchy", "pids"), f"{path}:{lineno}")
                    traces.append(current)
                    continue
                body, _, comment = line.partition(" # ")
                body = body.strip()
                if not body or body.startswith("#"):
                    continue
                known = None
                if comment.strip().startswith("known:"):
                    known = comment.strip()[len("known:"):].strip()
                current.ops.append((lineno, body, known))
    return traces


class Procs:
    """Real processes shared by both sides of a trace."""

    def __init__(self):
        self.vars = {}  # name -> (Popen, [tids])

    def spawn(self, name, nthreads):
        if nthreads <= 1:
            p = subprocess.Popen(["sleep", "1000"])
            tids = [p.pid]
        else:
            code = ("import threading,time,sys\n"
                    f"for _ in range({nthreads - 1}):\n"
                    "    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n"
                    "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(1000)\n")
            p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
            p.stdout.readline()
            tids = sorted(int(t) for t in os.listdir(f"/proc/{p.pid}/task"))
            tids.remove(p.pid)
            tids = [p.pid] + tids
        self.vars[name] = (p, tids)

    def kill(self, name):
        p, _ = self.vars.pop(name)
        p.kill()
        p.wait()

    def expand(self, text):
        def sub(m):
            name, idx = m.group(1), m.group(2)
            _, tids = self.vars[name]
            return str(tids[int(idx)] if idx else tids[0])
        return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)(?:\.(\d+))?", sub, text)

    def kill_all(self):
        for name in list(self.vars):
            self.kill(name)


def run_op(base, words, procs):
    """Runs one operation under `base`; returns its result as text."""
    op, args = words[0], words[1:]
    def path(p):
        return os.path.join(base, p)
    try:
        if op == "mkdir":
            os.mkdir(path(args[0]))
            return "ok"
        if op == "rmdir":
            os.rmdir(path(args[0]))
            return "ok"
        if op == "rm":
            os.unlink(path(args[0]))
            return "ok"
        if op == "rename":
            os.rename(path(args[0]), path(args[1]))
            return "ok"
        if op == "read":
            fd = os.open(path(args[0]), os.O_RDONLY)
            try:
                chunks = []
                while True:
                    b = os.read(fd, 65536)
                    if not b:
                        break
                    chunks.append(b)
            finally:
                os.close(fd)
            return "ok " + repr(b"".join(chunks).decode())
        if op == "ls":
            return "ok " + " ".join(sorted(os.listdir(path(args[0]))))
        if op == "stat":
            st = os.stat(path(args[0]))
            return f"ok mode={oct(st.st_mode & 0o7777)} uid={st.st_uid} gid={st.st_gid}"
        if op == "write":
            text = unescape(procs.expand(" ".join(args[1:])))
            fd = os.open(path(args[0]), os.O_WRONLY)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
            return "ok"
        if op == "chown":
            os.chown(path(args[0]), int(args[1]), int(args[1]))
            return "ok"
        if op == "chmod":
            os.chmod(path(args[0]), int(args[1], 8))
            return "ok"
        if op == "as":
            uid = int(args[0])
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    os.setgroups([])
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                    res = run_op(base, args[1:], procs)
                except BaseException as e:  # noqa: BLE001
                    res = "child failed " + repr(e)
                os.write(w, res.encode())
                os._exit(0)
            os.close(w)
            out = b""
            while True:
                b = os.read(r, 65536)
                if not b:
                    break
                out += b
            os.close(r)
            os.waitpid(pid, 0)
            return out.decode()
        return f"bad op {op}"
    except OSError as e:
        return "errno " + errno.errorcode.get(e.errno, str(e.errno))


def remove_tree(top):
    """Removes a cgroup directory tree bottom-up (processes are gone)."""
    if not os.path.isdir(top):
        return
    for root, dirs, _ in os.walk(top, topdown=False):
        for d in dirs:
            try:
                os.rmdir(os.path.join(root, d))
            except OSError:
                pass
    try:
        os.rmdir(top)
    except OSError:
        pass


def run_trace(trace, n, sides, procs):
    """Runs the trace on each side; returns a list of mismatch descriptions."""
    bases = {}
    for side, root in sides.items():
        base = os.path.join(root, trace.hierarchy, f"cgdiff-{os.getpid()}-{side}", str(n))
        os.makedirs(base)
        bases[side] = base
    problems = []
    try:
        for lineno, body, known in trace.ops:
            words = body.split()
            if words[0] == "spawn":
                procs.spawn(words[1], int(words[2]) if len(words) > 2 else 1)
                continue
            if words[0] == "kill":
                procs.kill(words[1])
                time.sleep(0.05)  # let the exit reach cgcorefs
                continue
            words = [procs.expand(w) for w in words]
            results = {side: run_op(base, words, procs) for side, base in bases.items()}
            if len(set(results.values())) > 1:
                line = (f"{trace.source} [{trace.name}] line {lineno}: {body}\n" +
                        "".join(f"    {s}: {r}\n" for s, r in results.items()))
                if known:
                    print(f"known difference ({known}):\n{line}", end="")
                else:
                    problems.append(line)
    finally:
        procs.kill_all()
        time.sleep(0.05)
        for base in bases.values():
            remove_tree(base)
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cgcorefs", required=True, help="path of the cgcorefs binary")
    ap.add_argument("--kernel-root", default="/sys/fs/cgroup")
    ap.add_argument("--other-root", help="compare against this already-mounted root instead of "
                    "mounting cgcorefs (debugging; the kernel root itself checks the harness)")
    ap.add_argument("traces", nargs="+")
    args = ap.parse_args()

    if os.geteuid() != 0:
        skip("needs root (kernel cgroups and FUSE)")
    for h in HIERARCHIES:
        if not os.access(os.path.join(args.kernel_root, h), os.W_OK):
            skip(f"the kernel's {h} hierarchy is not writable at {args.kernel_root}/{h}")
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        skip("FUSE (/dev/fuse, fusermount3) is not available")
    if not args.other_root and not os.access(args.cgcorefs, os.X_OK):
        skip(f"no cgcorefs binary at {args.cgcorefs}")

    traces = load_traces(args.traces)
    if args.other_root:
        mnt, daemon = args.other_root, None
    else:
        mnt = tempfile.mkdtemp(prefix="cgdiff-mnt-")
        # --no-state: a journal would outlive the run in /run.
        daemon = subprocess.Popen([args.cgcorefs, "--layout", "hybrid", "--foreground", "--no-state", mnt])
    procs = Procs()
    failures = []
    try:
        for _ in range(100):
            if os.path.isdir(os.path.join(mnt, "pids")):
                break
            if daemon and daemon.poll() is not None:
                print("cgcorefs exited early")
                return 1
            time.sleep(0.05)
        else:
            print("cgcorefs did not mount")
            return 1
        sides = {"kernel": args.kernel_root, "cgcore": mnt}
        if mnt == args.kernel_root:
            sides = {"kernel": args.kernel_root, "again": args.kernel_root}
        for side, root in sides.items():
            for h in HIERARCHIES:
                os.makedirs(os.path.join(root, h, f"cgdiff-{os.getpid()}-{side}"))
        for n, trace in enumerate(traces):
            failures += run_trace(trace, n, sides, procs)
    finally:
        procs.kill_all()
        for side, side_root in (("kernel", args.kernel_root), ("cgcore", mnt), ("again", mnt)):
            for h in HIERARCHIES:
                remove_tree(os.path.join(side_root, h, f"cgdiff-{os.getpid()}-{side}"))
        if daemon:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            subprocess.run(["fusermount3", "-u", "-z", mnt], stderr=subprocess.DEVNULL)
            try:
                os.rmdir(mnt)
            except OSError:
                pass

    for f in failures:
        print("MISMATCH " + f, end="")
    nops = sum(len(t.ops) for t in traces)
    print(f"{len(traces)} traces, {nops} operations")
    print(f"{len(traces) - len({f.split(']')[0] for f in failures})} passed, "
          f"{len({f.split(']')[0] for f in failures})} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
