# The same xattr operations on one cgroup directory, each result printed
# (ok / errno): run against the kernel and against a cgcorefs mount, the
# outputs must match. Root runs it; the "nobody" steps fork and drop to
# uid 65534.  Usage: xattr_seq.py CGROUP_DIR
import os, sys
g = sys.argv[1]
def t(what, f):
    try:
        r = f(); print(what, "ok", r if r is not None else "")
    except OSError as e: print(what, "errno", e.errno)
def as_nobody(what, f):
    pid = os.fork()
    if pid == 0:
        os.setgid(65534); os.setuid(65534); t(what, f); sys.stdout.flush(); os._exit(0)
    os.waitpid(pid, 0)
sys.stdout.flush()
t("set trusted", lambda: os.setxattr(g, "trusted.a", b"1"))
t("set user", lambda: os.setxattr(g, "user.b", b"2"))
t("set security", lambda: os.setxattr(g, "security.c", b"3"))
t("set other ns", lambda: os.setxattr(g, "foo.d", b"3"))
t("set system", lambda: os.setxattr(g, "system.d", b"3"))
t("set bare user.", lambda: os.setxattr(g, "user.", b"3"))
t("set on a file", lambda: os.setxattr(g + "/cgroup.procs", "user.f", b"1"))
t("get file", lambda: os.getxattr(g + "/cgroup.procs", "user.f"))
t("create existing", lambda: os.setxattr(g, "user.b", b"x", os.XATTR_CREATE))
t("replace missing", lambda: os.setxattr(g, "user.zz", b"x", os.XATTR_REPLACE))
t("get missing", lambda: os.getxattr(g, "user.zz"))
t("remove missing", lambda: os.removexattr(g, "user.zz"))
t("list", lambda: sorted(os.listxattr(g)))
sys.stdout.flush()
as_nobody("nobody list", lambda: sorted(os.listxattr(g)))
as_nobody("nobody get trusted", lambda: os.getxattr(g, "trusted.a"))
as_nobody("nobody get user", lambda: os.getxattr(g, "user.b"))
as_nobody("nobody set user", lambda: os.setxattr(g, "user.q", b"1"))
as_nobody("nobody set trusted", lambda: os.setxattr(g, "trusted.q", b"1"))
as_nobody("nobody set security", lambda: os.setxattr(g, "security.q", b"1"))
def fill(n, size):
    for i in range(n): os.setxattr(g, "user.n%d" % i, b"x" * size)
t("129 user xattrs", lambda: fill(200, 1))
for i in range(200):
    try: os.removexattr(g, "user.n%d" % i)
    except OSError: pass
t("3 x 60000 bytes", lambda: fill(3, 60000))
for i in range(3):
    try: os.removexattr(g, "user.n%d" % i)
    except OSError: pass
t("remove", lambda: os.removexattr(g, "user.b"))
t("list after", lambda: sorted(os.listxattr(g)))
