#!/usr/bin/env python3
"""cgctl top on a terminal (a pseudo-terminal): it redraws, takes
systemd-cgtop's keys (m sorts by memory at once, q quits) and gives the
terminal back as it found it.

usage: cgctl_tty_test.py CGCTL_BINARY"""
import os
import pty
import select
import sys
import tempfile
import termios
import time


def main():
    cgctl = sys.argv[1]
    with tempfile.TemporaryDirectory() as mnt:
        for name, mem in (("a", "100"), ("b", "900")):
            os.makedirs(f"{mnt}/{name}")
            open(f"{mnt}/{name}/cgroup.procs", "w").close()
            open(f"{mnt}/{name}/memory.current", "w").write(mem + "\n")
        open(f"{mnt}/cgroup.procs", "w").close()
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(cgctl, [cgctl, "-m", mnt, "top", "-d", "30"])
        out = b""

        def wait_for(needle, timeout=20):
            nonlocal out
            end = time.time() + timeout
            while needle not in out:
                r, _, _ = select.select([fd], [], [], max(0, end - time.time()))
                if not r:
                    raise AssertionError(f"no {needle!r} in {out!r}")
                out += os.read(fd, 4096)

        wait_for(b"/b")
        first = out
        assert first.index(b"/a ") < first.index(b"/b "), first  # by path
        out = b""
        os.write(fd, b"m")  # redraws at once, not after 30 s
        wait_for(b"/a ")
        assert out.index(b"/b ") < out.index(b"/a "), out  # memory, largest first
        os.write(fd, b"q")
        end = time.time() + 5
        while time.time() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("q did not quit")
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        # The pseudo-terminal's modes (shared by both ends) are back.
        after = termios.tcgetattr(fd)
        assert after[3] & termios.ICANON and after[3] & termios.ECHO, after
    print("cgctl top on a terminal: keys and exit ok")


if __name__ == "__main__":
    main()
