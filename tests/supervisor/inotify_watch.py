# Watches files for IN_MODIFY (inotify through ctypes: no inotify-tools
# needed) for up to SECONDS; prints "ready" once watching, then per file
# "modified NAME" or "silent NAME".  Usage: inotify_watch.py SECONDS FILE...
import ctypes, os, select, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
wds = {libc.inotify_add_watch(fd, p.encode(), 2): p for p in sys.argv[2:]}  # IN_MODIFY
print("ready", flush=True)
heard = set()
deadline = float(sys.argv[1])
import time
end = time.time() + deadline
while time.time() < end and len(heard) < len(wds):
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        buf = os.read(fd, 4096); i = 0
        while i < len(buf):
            wd, mask, cookie, ln = struct.unpack_from("iIII", buf, i); i += 16 + ln
            if wd in wds and mask & 2: heard.add(wds[wd])
for p in sys.argv[2:]: print(("modified " if p in heard else "silent ") + os.path.basename(p))
