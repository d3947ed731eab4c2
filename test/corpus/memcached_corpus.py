#!/usr/bin/env python3
"""Runs the protocol transcript corpus (test/corpus/*.txt) against a real memcached.

    memcached_corpus.py check  [--port P] [files...]   # every non-native-only case must match
    memcached_corpus.py record [--port P] file          # print the file with memcached's replies

`check` is the differential run: it exits 1 if any case's replies differ from the transcript.
`record` drafts transcripts: it keeps comments and client lines of each case and replaces its
expected lines with what memcached answered (`<` lines; replies must then be reviewed, and
values that legitimately differ, such as CAS unique values, turned into `<~` regexes).

With no --port, a memcached is started on a free loopback port and stopped at the end.
Transcript format: see README.md in this folder.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

REPEAT = re.compile(rb"\{repeat:(\\x[0-9a-fA-F]{2}|\\[rnt\\]|[^\\]):(\d+)\}")


def unescape(text):
    """Corpus text -> bytes: \\r \\n \\t \\\\ \\xNN escapes and {repeat:C:N}."""
    out = bytearray()
    raw = text.encode("latin-1")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):  # backslash
            n = raw[i + 1]
            if n == ord("r"):
                out += b"\r"
                i += 2
            elif n == ord("n"):
                out += b"\n"
                i += 2
            elif n == ord("t"):
                out += b"\t"
                i += 2
            elif n == 0x5C:
                out += b"\\"
                i += 2
            elif n == ord("x") and i + 3 < len(raw) + 0:
                out.append(int(raw[i + 2 : i + 4], 16))
                i += 4
            else:
                raise ValueError("bad escape in %r" % text)
            continue
        if c == ord("{"):
            m = REPEAT.match(raw, i)
            if m:
                out += unescape(m.group(1).decode("latin-1")) * int(m.group(2))
                i = m.end()
                continue
        out.append(c)
        i += 1
    return bytes(out)


def escape(data):
    """bytes -> corpus text (inverse of unescape); long runs become {repeat:C:N}."""
    out = []
    i = 0
    while i < len(data):
        c = data[i]
        run = 1
        while i + run < len(data) and data[i + run] == c:
            run += 1
        printable = 0x20 <= c < 0x7F and c not in (0x5C, ord("{"))
        if run >= 32 and printable:
            out.append("{repeat:%s:%d}" % (chr(c), run))
            i += run
            continue
        if c == 0x5C:
            out.append("\\\\")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x09:
            out.append("\\t")
        elif c == ord("{") and data[i:i + 8] == b"{repeat:":
            out.append("\\x7b")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
        i += 1
    return "".join(out)


TAGS = ("native-only", "leaf-only", "one-read")
HEADER_TAGS = re.compile(r"^(.*?)\s*\[([^\]]*)\]\s*$")


class Case:
    def __init__(self, name, tags, line_no):
        self.name = name
        self.tags = tags
        # Not run here: needs something real memcached cannot do. leaf-only cases (not through a
        # router) and one-read cases (input sent whole, as `check` does) run against memcached.
        self.native_only = "native-only" in tags
        self.line_no = line_no
        self.steps = []  # ("send", bytes) | ("advance", n) | ("expect", bytes) | ("match", regex) | ("closed",)
        self.source = []  # the raw lines, for record mode


def parse(path):
    cases = []
    header = []
    with open(path, encoding="latin-1") as f:
        for no, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("=== "):
                name = line[4:].strip()
                tags = []
                tagged = HEADER_TAGS.match(name)
                if tagged:
                    name = tagged.group(1)
                    tags = [t for t in re.split(r"[\s,]+", tagged.group(2)) if t]
                    unknown = [t for t in tags if t not in TAGS]
                    if unknown:
                        raise ValueError("%s:%d: unknown tag [%s]" % (path, no, unknown[0]))
                cases.append(Case(name, tags, no))
                cases[-1].source.append(line)
                continue
            if not cases:
                header.append(line)
                continue
            case = cases[-1]
            case.source.append(line)
            if line.startswith("#") or line.strip() == "":
                continue
            if line.startswith(">>"):
                case.steps.append(("send", unescape(line[3:] if line.startswith(">> ") else line[2:])))
            elif line.startswith(">"):
                case.steps.append(("send", unescape(line[2:] if line.startswith("> ") else line[1:]) + b"\r\n"))
            elif line.startswith("<~"):
                case.steps.append(("match", line[3:] if line.startswith("<~ ") else line[2:]))
            elif line.startswith("<"):
                case.steps.append(("expect", unescape(line[2:] if line.startswith("< ") else line[1:]) + b"\r\n"))
            elif line.startswith("@ advance "):
                case.steps.append(("advance", int(line[len("@ advance "):])))
            elif line.strip() == "! closed":
                case.steps.append(("closed",))
            else:
                raise ValueError("%s:%d: unknown line %r" % (path, no, line))
    return header, cases


def match(case, actual, closed):
    """Returns None if `actual` (all reply bytes) and `closed` satisfy the case, else a message."""
    pos = 0
    want_closed = False
    for step in case.steps:
        kind = step[0]
        if kind == "expect":
            if not actual.startswith(step[1], pos):
                return "at byte %d expected %r, got %r" % (pos, step[1][:200], actual[pos:pos + 200])
            pos += len(step[1])
        elif kind == "match":
            end = actual.find(b"\r\n", pos)
            if end < 0:
                return "at byte %d expected a line matching %r, got %r" % (pos, step[1], actual[pos:pos + 200])
            line = actual[pos:end].decode("latin-1")
            if not re.fullmatch(step[1], line):
                return "line %r does not match %r" % (line, step[1])
            pos = end + 2
        elif kind == "closed":
            want_closed = True
    if pos != len(actual):
        return "unexpected extra reply bytes %r" % actual[pos:pos + 200]
    if want_closed != closed:
        return "connection %s" % ("stayed open" if want_closed else "was closed")
    return None


def expected_size(case):
    """Bytes of reply the case expects, when known exactly (no regex lines)."""
    if any(s[0] == "match" for s in case.steps):
        return None
    return sum(len(s[1]) for s in case.steps if s[0] == "expect")


def receive(sock, quiet_seconds, enough=lambda got: False):
    """Reads until the peer closes or nothing arrives for `quiet_seconds`; once `enough(bytes so
    far)` holds, waits only 0.05 s more for anything unexpected. Returns (bytes, closed)."""
    out = b""
    closed = False
    sock.settimeout(quiet_seconds)
    try:
        while True:
            if enough(out):
                sock.settimeout(0.05)
            chunk = sock.recv(1 << 20)
            if not chunk:
                closed = True
                break
            out += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    return out, closed


def run_case(port, case, quiet_seconds):
    """Sends the case's input at once and collects replies until the connection closes, the
    expected byte count arrives, or nothing comes for `quiet_seconds`."""
    data = b"".join(s[1] for s in case.steps if s[0] == "send")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(data)
    want = expected_size(case)
    expects_close = any(s[0] == "closed" for s in case.steps)
    out, closed = receive(
        sock, quiet_seconds, lambda got: want is not None and len(got) >= want and not expects_close
    )
    sock.close()
    return out, closed


def start_memcached():
    binary = shutil.which("memcached")
    if binary is None:
        sys.exit("memcached is not installed (it is needed for the differential corpus run)")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    args = [binary, "-p", str(port), "-U", "0", "-l", "127.0.0.1"]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("memcached did not start")


def main(argv):
    if len(argv) < 2 or argv[1] not in ("check", "record"):
        sys.exit(__doc__)
    mode = argv[1]
    args = argv[2:]
    port = None
    if len(args) >= 2 and args[0] == "--port":
        port = int(args[1])
        args = args[2:]
    here = os.path.dirname(os.path.abspath(__file__))
    files = args or sorted(os.path.join(here, f) for f in os.listdir(here) if f.endswith(".txt"))
    proc = None
    if port is None:
        proc, port = start_memcached()
    try:
        if mode == "record":
            return record(port, files[0])
        return check(port, files)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


def check(port, files):
    passed = failed = skipped = 0
    for path in files:
        _, cases = parse(path)
        for case in cases:
            if case.native_only:
                skipped += 1
                continue
            actual, closed = run_case(port, case, 0.5)
            problem = match(case, actual, closed)
            if problem is None:
                passed += 1
            else:
                failed += 1
                print("FAIL %s:%d %s: %s" % (os.path.basename(path), case.line_no, case.name, problem))
    print("memcached corpus: %d passed, %d failed, %d native-only skipped" % (passed, failed, skipped))
    return 1 if failed else 0


def record(port, path):
    """Replays each case one client line at a time and writes memcached's replies under the
    line that caused them."""
    header, cases = parse(path)
    for line in header:
        print(line)
    for case in cases:
        if case.native_only:
            print("\n".join(case.source))
            continue
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        closed = False
        lines = [l for l in case.source if not (l.startswith("<") or l.strip() == "! closed")]
        while lines and lines[-1].strip() == "":
            lines.pop()
        for line in lines:
            print(line)
            if not line.startswith(">") or closed:
                continue
            _, parsed = parse_lines([line])
            sock.sendall(parsed)
            out, closed = receive(sock, 0.08)
            pieces = out.split(b"\r\n")
            tail = pieces.pop()
            for piece in pieces:
                print("< " + escape(piece) if piece else "<")
            if tail:
                print("# UNTERMINATED REPLY: " + escape(tail))
        if closed:
            print("! closed")
        sock.close()
        print()
    return 0


def parse_lines(lines):
    """The bytes a list of client lines sends."""
    data = b""
    for line in lines:
        if line.startswith(">>"):
            data += unescape(line[3:] if line.startswith(">> ") else line[2:])
        elif line.startswith(">"):
            data += unescape(line[2:] if line.startswith("> ") else line[1:]) + b"\r\n"
    return None, data


if __name__ == "__main__":
    sys.exit(main(sys.argv))
