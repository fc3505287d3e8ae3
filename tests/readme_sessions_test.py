#!/usr/bin/env python3
"""The README's two sessions, typed as shown.

usage: readme_sessions_test.py README cgsh|mount BUILD_TOOLS_DIR

Extracts the code block under "## A session in cgsh" or "## A session on the
mount" and replays it:

* cgsh: the `cgsh>` lines on cgsh's standard input; its output (stdout and
  stderr, in order) must be the block's other lines exactly.
* mount: every `$ ` line typed into one interactive bash on a
  pseudo-terminal (job control, `$!`, `%1` behave as for a person), with
  two substitutions: the first command (scripts/run.sh, which also installs
  and builds) becomes the built `cgcorefs --foreground`, and /tmp/cgcore a
  fresh directory. Each command's output is compared with the block's lines
  after it, whitespace-insensitively; numbers of 3 digits or more (pids,
  task counts) match any number, and a pid seen in the output replaces the
  README's in later commands; commands are 0.3 s apart, as typed.
  Job-control notices ("[2] 1234",
  "[2]+ Terminated") are ignored. Skipped (exit 77) without a usable
  /dev/fuse or fusermount3. The mount, the daemon and the shell are removed
  also when a check fails.
"""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def block(readme, heading):
    text = open(readme).read()
    at = text.index(heading)
    start = text.index("```\n", at) + 4
    return text[start:text.index("```", start)].splitlines()


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


# ------------------------------------------------------------------ cgsh

def run_cgsh(readme, tools):
    lines = block(readme, "## A session in cgsh")
    assert lines[0].startswith("$ build/tools/cgsh"), lines[0]
    commands = [l[len("cgsh> "):] for l in lines[1:] if l.startswith("cgsh> ")]
    expected = [l for l in lines[1:] if not l.startswith("cgsh> ")]
    p = subprocess.run([os.path.join(tools, "cgsh")], input="\n".join(commands) + "\n",
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    got = p.stdout.splitlines()
    if got != expected:
        fail("cgsh session: expected\n  " + "\n  ".join(expected) + "\ngot\n  " + "\n  ".join(got))
    # The fork refused outside an assert: status 1, as docs/cgsh.md says.
    if p.returncode != 1:
        fail(f"cgsh session: exit status {p.returncode}, expected 1")
    print("README cgsh session: ok")


# ----------------------------------------------------------------- mount

def fuse_unavailable():
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"/dev/fuse: {e.strerror}"
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        return "no fusermount3"
    return ""


PROMPT = "<<readme-prompt>>"
NOTICE = re.compile(r"^\[\d+\][+-]?(\s+\d+$|\s+(Done|Terminated|Killed|Exit \d+)\b.*)")


class Bash:
    """An interactive bash on a pseudo-terminal, one command at a time."""

    def __init__(self):
        env = dict(os.environ, PS1=PROMPT, PS2="", TERM="dumb", HISTFILE="/dev/null")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)
        self.buf = ""
        self.read_until(PROMPT)
        self.run("stty -echo")

    def read_until(self, needle, timeout=30.0):
        end = time.time() + timeout
        while needle not in self.buf:
            left = end - time.time()
            if left <= 0:
                fail(f"timed out waiting for {needle!r}; the terminal shows {self.buf!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    fail(f"the shell ended; it showed {self.buf!r}")
                self.buf += chunk.decode(errors="replace").replace("\r", "")
        at = self.buf.index(needle)
        out, self.buf = self.buf[:at], self.buf[at + len(needle):]
        return out

    def run(self, command, timeout=30.0):
        os.write(self.fd, (command + "\n").encode())
        return self.read_until(PROMPT, timeout)

    def children(self):
        """The shell's child processes (its jobs: the daemon, the sleep)."""
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    stat = open(f"/proc/{d}/stat").read()
                except OSError:
                    continue
                if int(stat[stat.rindex(")") + 2:].split()[1]) == self.pid:
                    kids.append(int(d))
        return kids

    def close(self):
        # Jobs run in process groups of their own: each one is killed.
        for kid in self.children():
            for kill in (lambda: os.killpg(kid, signal.SIGKILL), lambda: os.kill(kid, signal.SIGKILL)):
                try:
                    kill()
                except OSError:
                    pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass


def pattern(expected_lines):
    """A regex for a command's expected output, whitespace-insensitive; long
    numbers captured."""
    words = " ".join(expected_lines).split()
    parts = []
    for w in words:
        parts.append(re.sub(r"\d{3,}|[^\d]+|\d{1,2}",
                            lambda m: r"(\d+)" if len(m.group()) >= 3 and m.group().isdigit()
                            else re.escape(m.group()), w))
    return "^" + r"\s+".join(parts) + "$" if parts else r"^$"


def run_mount(readme, tools):
    why = fuse_unavailable()
    if why:
        print(f"SKIP: README mount session needs FUSE: {why}")
        sys.exit(SKIP)
    lines = block(readme, "## A session on the mount")
    # [(command, [expected lines])]
    steps = []
    for l in lines:
        if l.startswith("$ "):
            steps.append([l[2:], []])
        else:
            steps[-1][1].append(l)
    mnt = tempfile.mkdtemp(prefix="cgcore-readme.")
    cgcorefs = os.path.join(tools, "cgcorefs")
    first = steps[0][0]
    assert first.startswith("scripts/run.sh /tmp/cgcore &"), first
    # --no-state: the README's daemon keeps its state in /run, which a test
    # must not leave behind.
    steps[0][0] = f"{cgcorefs} --foreground --no-state /tmp/cgcore &"
    sh = Bash()
    seen = {}  # README number -> this run's
    try:
        for i, (command, expected) in enumerate(steps):
            command = command.replace("/tmp/cgcore", mnt)
            for old, new in seen.items():
                command = re.sub(rf"\b{old}\b", new, command)
            # A person takes a moment between commands: the daemon follows
            # processes through events that arrive after the fact, a lag
            # no one typing would see.
            time.sleep(0.3)
            out = sh.run(command)
            if i == 0:
                # The daemon's line comes once mounted, before or after the
                # prompt. Its tail (how processes are followed) depends on
                # root; the rest is checked.
                while "mounted layout" not in out:
                    out += sh.read_until("\n", 60) + "\n"
                expected = [e.replace("/tmp/cgcore", mnt).split(" (")[0] for e in expected]
                out = "\n".join(l.split(" (")[0] for l in out.splitlines() if "mounted layout" in l)
            got = [l for l in out.splitlines() if l.strip() and not NOTICE.match(l.strip())]
            m = re.match(pattern(expected), " ".join(" ".join(got).split()))
            if not m:
                fail(f"step {i + 1} `{command}`: expected\n  " + "\n  ".join(expected) +
                     "\ngot\n  " + "\n  ".join(got))
            readme_numbers = re.findall(r"\d{3,}", " ".join(expected))
            for old, new in zip(readme_numbers, m.groups()):
                if old not in seen:
                    seen[old] = new
            status = sh.run("echo status=$?").strip()
            # Steps expected to print an error fail; the others succeed.
            wants_error = any("error" in e or "failed" in e for e in expected)
            if not wants_error and i > 0 and status != "status=0":
                fail(f"step {i + 1} `{command}`: {status}")
        print(f"README mount session: ok ({len(steps)} commands)")
    finally:
        try:
            os.write(sh.fd, b"cd /\n")
        except OSError:
            pass
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        sh.close()
        subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
        try:
            os.rmdir(mnt)
        except OSError:
            pass


def main():
    readme, which, tools = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    run_cgsh(readme, tools) if which == "cgsh" else run_mount(readme, tools)


if __name__ == "__main__":
    main()
