#!/usr/bin/env python3
"""cgsh on a terminal (a pseudo-terminal): Tab completion of commands, paths
and files; Ctrl-C cancels the line, not the session; history is saved in
$CGSH_HISTORY and read back by the next session.

usage: cgsh_tty_test.py CGSH_BINARY"""
import os
import pty
import select
import sys
import tempfile
import time


def session(cgsh, env):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(cgsh, [cgsh], env)
    return pid, fd


def read_until(fd, needle, timeout=20.0):
    """What the terminal shows until `needle` appears (fails on timeout)."""
    out = b""
    end = time.time() + timeout
    while needle.encode() not in out:
        left = end - time.time()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {out!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def main():
    cgsh = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        hist = os.path.join(tmp, "history")
        env = dict(os.environ, CGSH_HISTORY=hist, TERM="dumb", INPUTRC="/dev/null")
        pid, fd = session(cgsh, env)
        read_until(fd, "cgsh> ")
        # A command name, then a directory, then a file name in it.
        os.write(fd, b"mkd\t")
        read_until(fd, "mkdir ")
        os.write(fd, b"/pi\t")
        read_until(fd, "/pids/")
        os.write(fd, b"web\r")
        read_until(fd, "cgsh> ")
        os.write(fd, b"cat /pids/web/pids.ma\t")
        read_until(fd, "pids.max ")
        os.write(fd, b"\r")
        read_until(fd, "max")
        # A task's $NAME.
        os.write(fd, b"spawn Alpha\r")
        read_until(fd, "cgsh> ")
        os.write(fd, b"cgroup $Al\t")
        read_until(fd, "$Alpha ")
        os.write(fd, b"\r")
        read_until(fd, "pids:/")
        # Ctrl-C drops the half-typed line; the session goes on.
        os.write(fd, b"rmdir /pids/web")
        read_until(fd, "/pids/web")
        time.sleep(0.2)  # as a person would: readline has taken every key
        os.write(fd, b"\x03")
        read_until(fd, "^C\r\ncgsh> ")
        os.write(fd, b"ls /pids\r")
        out = read_until(fd, "cgsh> ")
        assert "web" in out, f"the cancelled rmdir ran: {out!r}"
        os.write(fd, b"quit\r")
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        with open(hist) as f:
            lines = f.read().splitlines()
        assert lines == ["mkdir /pids/web", "cat /pids/web/pids.max ", "spawn Alpha", "cgroup $Alpha ", "ls /pids", "quit"], lines

        # The next session recalls it (Up arrow: readline's previous-history).
        pid, fd = session(cgsh, env)
        read_until(fd, "cgsh> ")
        os.write(fd, b"\x10")  # Ctrl-P: previous line
        read_until(fd, "quit")
        os.write(fd, b"\r")
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    print("cgsh terminal session: completion, Ctrl-C and history ok")


if __name__ == "__main__":
    main()
