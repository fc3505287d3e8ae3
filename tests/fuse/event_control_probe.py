#!/usr/bin/env python3
"""v1 memory eventfd notifications (cgroup.event_control), as a program
written against the kernel's interface uses them.

Usage: event_control_probe.py MEMORY_ROOT

MEMORY_ROOT is the directory of a v1 memory hierarchy: the kernel's
(/sys/fs/cgroup/memory) or a cgcorefs mount's (MOUNT/memory). The probe
makes two cgroups of its own under it, prints one line per case (the
outcome: "ok", an errno name, or what the eventfd saw), and removes them.
The transcript is the same on the kernel and on cgcorefs; run it on both
to compare (tests/fuse/event_control.expected is the transcript of Linux
6.18). Needs root (it moves a child of its own and sets limits).
"""
import errno
import os
import select
import sys
import time

ROOT = sys.argv[1]
NAME = "ecprobe.%d" % os.getpid()
CG = os.path.join(ROOT, NAME)
SIB = CG + ".sibling"
PAGE = os.sysconf("SC_PAGE_SIZE")


def out(case, result):
    print("%s: %s" % (case, result), flush=True)


def write_control(cgroup, text):
    """Writes `text` to the cgroup's cgroup.event_control in one write."""
    fd = os.open(os.path.join(cgroup, "cgroup.event_control"), os.O_WRONLY)
    try:
        os.write(fd, text.encode())
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)


def total_signalled(efd, timeout):
    """The sum of the eventfd's counts until it stays quiet for half a
    second (the kernel takes listeners off a removed cgroup in a work
    item, one at a time), waiting at most `timeout` seconds for the first."""
    n = signalled(efd, timeout)
    while n:
        more = signalled(efd, 0.5)
        if not more:
            break
        n += more
    return n


def signalled(efd, timeout):
    """The eventfd's count once it becomes readable within `timeout`
    seconds (and resets it), or 0."""
    r, _, _ = select.select([efd], [], [], timeout)
    if not r:
        return 0
    return os.eventfd_read(efd)


def child(ready_w, go_r, size):
    """A child that touches `size` bytes once told to, frees them when told
    again, then waits to be killed."""
    os.read(go_r, 1)
    block = bytearray(size)
    for i in range(0, size, PAGE):
        block[i] = 1
    os.write(ready_w, b"a")
    os.read(go_r, 1)
    del block
    os.write(ready_w, b"f")
    os.read(go_r, 1)
    os._exit(0)


def main():
    for d in (CG, SIB):
        os.mkdir(d)
    usage = os.open(os.path.join(CG, "memory.usage_in_bytes"), os.O_RDONLY)
    oom = os.open(os.path.join(CG, "memory.oom_control"), os.O_RDONLY)
    pressure = os.open(os.path.join(CG, "memory.pressure_level"), os.O_RDONLY)
    procs = os.open(os.path.join(CG, "cgroup.procs"), os.O_RDONLY)
    sibling_usage = os.open(os.path.join(SIB, "memory.usage_in_bytes"), os.O_RDONLY)
    cgdir = os.open(CG, os.O_RDONLY | os.O_DIRECTORY)
    other = os.open("/proc/self/stat", os.O_RDONLY)
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    unused = 1000
    while True:
        try:
            os.fstat(unused)
            unused += 1
        except OSError:
            break

    # ---- what the kernel refuses, in the order it checks
    out("no numbers", write_control(CG, "abc"))
    out("event fd alone", write_control(CG, "%d" % efd))
    out("junk after the control fd", write_control(CG, "%d %dx" % (efd, usage)))
    out("two spaces", write_control(CG, "%d  %d" % (efd, usage)))
    out("closed event fd", write_control(CG, "%d %d" % (unused, usage)))
    out("event fd not an eventfd", write_control(CG, "%d %d" % (other, usage)))
    out("closed control fd", write_control(CG, "%d %d" % (efd, unused)))
    out("control fd outside cgroupfs", write_control(CG, "%d %d" % (efd, other)))
    out("control fd a directory", write_control(CG, "%d %d" % (efd, cgdir)))
    out("control fd cgroup.procs", write_control(CG, "%d %d" % (efd, procs)))
    out("control fd of another cgroup", write_control(CG, "%d %d 1M" % (efd, sibling_usage)))
    out("threshold not a size", write_control(CG, "%d %d abc" % (efd, usage)))
    out("threshold with junk", write_control(CG, "%d %d 1Mx" % (efd, usage)))
    out("pressure level unknown", write_control(CG, "%d %d bogus" % (efd, pressure)))
    out("pressure level missing", write_control(CG, "%d %d" % (efd, pressure)))
    out("pressure mode unknown", write_control(CG, "%d %d low,bogus" % (efd, pressure)))
    out("nothing signalled by refusals", signalled(efd, 0))

    # ---- what it takes
    out("pressure low", write_control(CG, "%d %d low" % (efd, pressure)))
    out("pressure critical,local", write_control(CG, "%d %d critical,local" % (efd, pressure)))
    out("oom (arguments ignored)", write_control(CG, "%d %d whatever" % (efd, oom)))
    out("threshold with white space around", write_control(CG, "  %d %d 8M \n" % (efd, usage)))
    out("nothing signalled by registering", signalled(efd, 0))

    # ---- thresholds fire when usage crosses them, up and down
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        child(ready_w, go_r, 32 << 20)
    os.close(ready_w)
    os.close(go_r)
    with open(os.path.join(CG, "cgroup.procs"), "w") as f:
        f.write(str(pid))
    time.sleep(0.3)
    out("below the threshold", signalled(efd, 0))
    os.write(go_w, b"g")
    os.read(ready_r, 1)
    out("usage crossed 8M upwards", "signalled" if signalled(efd, 5) else "silent")
    os.write(go_w, b"g")
    os.read(ready_r, 1)
    out("usage crossed 8M downwards", "signalled" if signalled(efd, 5) else "silent")
    os.write(go_w, b"g")
    os.waitpid(pid, 0)

    # ---- an OOM in the cgroup signals its oom_control listeners
    oom_efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    out("oom listener", write_control(CG, "%d %d" % (oom_efd, oom)))
    with open(os.path.join(CG, "memory.limit_in_bytes"), "w") as f:
        f.write("16M")
    # The child allocates only once it is in the cgroup: a v1 charge made
    # before the move stays with the old cgroup, and no OOM would follow.
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.read(go_r, 1)
        block = bytearray(64 << 20)
        for i in range(0, len(block), PAGE):
            block[i] = 1
        time.sleep(30)
        os._exit(0)
    os.close(go_r)
    with open(os.path.join(CG, "cgroup.procs"), "w") as f:
        f.write(str(pid))
    os.write(go_w, b"g")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    out("the child over the limit", "killed by signal %d" % os.WTERMSIG(status)
        if os.WIFSIGNALED(status) else "exited")
    out("oom listener after the kill", "signalled" if signalled(oom_efd, 5) else "silent")

    # ---- removing the cgroup signals every listener once
    # The OOM victim's memory crossed the 8M threshold on its way up and
    # down. cgcore uncharges it when it learns of the exit, which may be
    # after waitpid returns: wait for usage to fall below the threshold,
    # then take what those crossings signalled.
    deadline = time.time() + 5
    while time.time() < deadline:
        with open(os.path.join(CG, "memory.usage_in_bytes")) as f:
            if int(f.read()) < (8 << 20):
                break
        time.sleep(0.05)
    total_signalled(efd, 1)
    for fd in (usage, oom, pressure, procs, cgdir):
        os.close(fd)
    deadline = time.time() + 5
    while True:
        try:
            os.rmdir(CG)
            break
        except OSError as e:
            if e.errno != errno.EBUSY or time.time() > deadline:
                raise
            time.sleep(0.05)
    # Four listeners on efd (two pressure, oom, threshold), one on oom_efd.
    out("rmdir signals each listener", "%d and %d" % (total_signalled(efd, 5),
                                                     total_signalled(oom_efd, 5)))
    os.rmdir(SIB)


try:
    main()
finally:
    for d in (CG, SIB):
        try:
            os.rmdir(d)
        except OSError:
            pass
