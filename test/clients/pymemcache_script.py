"""What a new pymemcache user does, against one memcached-compatible server.

Usage: python3 pymemcache_script.py HOST PORT

Runs a fixed script of commands with pymemcache's Client, as its documentation shows them, and
prints one JSON object: "steps", a list of [name, repr(result)] (an exception is recorded as
"ClassName: message" and the script goes on), and "stats"/"version" as the server reported them.
Results that differ between servers by design (cas tokens, stats values) are reduced to what a
client may rely on, so real memcached's output is the expected output for every server.
"""

import json
import sys

from pymemcache import serde
from pymemcache.client.base import Client

host, port = sys.argv[1], int(sys.argv[2])
server = (host, port)
steps = []


def step(name, call):
    try:
        result = call()
    except Exception as error:  # a client error is a result to compare, not a crash
        result = "%s: %s" % (type(error).__name__, error)
    steps.append([name, repr(result)])
    return result


# Replies wanted: every storage command says whether it stored.
mc = Client(server, default_noreply=False, connect_timeout=5, timeout=5)

step("flush_all", lambda: mc.flush_all())
step("get missing", lambda: mc.get("missing"))
step("get missing with default", lambda: mc.get("missing", default=b"fallback"))
step("set", lambda: mc.set("greeting", b"hello"))
step("get", lambda: mc.get("greeting"))
step("set with flags", lambda: mc.set("flagged", b"v", flags=42))
step("get flagged", lambda: mc.get("flagged"))
step("set empty value", lambda: mc.set("empty", b""))
step("get empty value", lambda: mc.get("empty"))
binary = bytes(range(256)) * 4 + b"\r\nEND\r\n"
step("set binary value", lambda: mc.set("binary", binary))
step("get binary value intact", lambda: mc.get("binary") == binary)
big = b"x" * (512 * 1024)
step("set 512 KiB", lambda: mc.set("big", big))
step("get 512 KiB intact", lambda: mc.get("big") == big)
step("set 2 MiB (over the item limit)", lambda: mc.set("huge", b"y" * (2 * 1024 * 1024)))
step("get 2 MiB", lambda: mc.get("huge"))
step("connection usable after the refusal", lambda: mc.get("greeting"))

step("set a", lambda: mc.set("a", b"1"))
step("set b", lambda: mc.set("b", b"2"))
step("get_many", lambda: sorted(mc.get_many(["a", "b", "missing", "greeting"]).items()))
step("get_many none found", lambda: mc.get_many(["nope1", "nope2"]))
step("get_many empty list", lambda: mc.get_many([]))

step("add new", lambda: mc.add("added", b"first"))
step("add existing", lambda: mc.add("added", b"second"))
step("get added", lambda: mc.get("added"))
step("replace existing", lambda: mc.replace("added", b"replaced"))
step("replace missing", lambda: mc.replace("never", b"x"))
step("get replaced", lambda: mc.get("added"))
step("get never", lambda: mc.get("never"))

step("append", lambda: mc.append("greeting", b" world"))
step("prepend", lambda: mc.prepend("greeting", b">> "))
step("get appended and prepended", lambda: mc.get("greeting"))
step("append missing", lambda: mc.append("never", b"x"))
step("prepend missing", lambda: mc.prepend("never", b"x"))

value, token = step("gets", lambda: mc.gets("greeting"))
steps[-1][1] = repr((value, isinstance(token, bytes) and token.isdigit()))
step("cas with the token", lambda: mc.cas("greeting", b"swapped", token))
step("get after cas", lambda: mc.get("greeting"))
step("cas with the stale token", lambda: mc.cas("greeting", b"lost", token))
step("get after stale cas", lambda: mc.get("greeting"))
step("cas missing key", lambda: mc.cas("never", b"x", b"1"))
step("gets missing", lambda: mc.gets("never"))
_, first = mc.gets("greeting")
mc.set("greeting", b"changed")
_, second = mc.gets("greeting")
steps.append(["a write changes the cas token", repr(first != second)])

step("delete", lambda: mc.delete("a"))
step("delete again", lambda: mc.delete("a"))
step("get deleted", lambda: mc.get("a"))

step("set counter", lambda: mc.set("counter", b"10"))
step("incr", lambda: mc.incr("counter", 5))
step("decr", lambda: mc.decr("counter", 3))
step("decr below zero stops at 0", lambda: mc.decr("counter", 100))
step("incr missing", lambda: mc.incr("never", 1))
step("decr missing", lambda: mc.decr("never", 1))
step("set max counter", lambda: mc.set("wrap", b"18446744073709551615"))
step("incr wraps at 2**64", lambda: mc.incr("wrap", 1))
step("incr non-numeric", lambda: mc.incr("added", 1))
step("incr negative delta", lambda: mc.incr("counter", -1))
step("get counter", lambda: mc.get("counter"))

step("touch", lambda: mc.touch("counter", 3600))
step("touch missing", lambda: mc.touch("never", 3600))
step("touch with a past expiry", lambda: mc.touch("b", -1))
step("get after touch to the past", lambda: mc.get("b"))

# Keys pymemcache accepts: no ASCII whitespace, no NUL, at most 250 bytes.
for name, key in [
    ("escape byte", b"k\x1bx"),
    ("DEL byte", b"k\x7fx"),
    ("SOH byte", b"\x01k"),
    ("250 bytes", b"k" * 250),
    ("punctuation", b"user:42/profile?v=1&x=%20#frag"),
]:
    step("set key with " + name, lambda key=key: mc.set(key, b"kv"))
    step("get key with " + name, lambda key=key: mc.get(key))
    step("delete key with " + name, lambda key=key: mc.delete(key))
step("key of 251 bytes", lambda: mc.set(b"k" * 251, b"x"))
step("key with a space", lambda: mc.set(b"a b", b"x"))
unicode_mc = Client(server, default_noreply=False, allow_unicode_keys=True, connect_timeout=5, timeout=5)
step("set unicode key", lambda: unicode_mc.set("clé·ключ", b"utf8"))
step("get unicode key", lambda: unicode_mc.get("clé·ключ"))
unicode_mc.close()

# The serde stores Python objects, telling types apart by flags.
pickled = Client(server, serde=serde.pickle_serde, default_noreply=False, connect_timeout=5, timeout=5)
step("serde set dict", lambda: pickled.set("obj", {"n": 1, "l": [1, 2]}))
step("serde get dict", lambda: pickled.get("obj"))
step("serde set int", lambda: pickled.set("int", 7))
step("serde get int", lambda: pickled.get("int"))
step("serde incr int", lambda: pickled.incr("int", 1))
step("serde get incremented int", lambda: pickled.get("int"))
pickled.close()

# pymemcache's default: storage commands send noreply and return True without waiting. Whatever
# the server answered anyway would be read as the reply to the next command, so every read
# below also checks that nothing came back.
quiet = Client(server, connect_timeout=5, timeout=5)
step("noreply set", lambda: quiet.set("q", b"1"))
step("noreply add existing", lambda: quiet.add("q", b"2"))
step("noreply replace missing", lambda: quiet.replace("q-missing", b"2"))
step("noreply append", lambda: quiet.append("q", b"2"))
step("noreply prepend", lambda: quiet.prepend("q", b"0"))
step("get after noreply writes", lambda: quiet.get("q"))
step("noreply incr", lambda: quiet.incr("q", 10, noreply=True))
step("noreply decr", lambda: quiet.decr("q", 1, noreply=True))
step("noreply incr missing", lambda: quiet.incr("q-missing", 1, noreply=True))
step("get after noreply incr and decr", lambda: quiet.get("q"))
step("noreply touch", lambda: quiet.touch("q", 3600))
step("noreply touch missing", lambda: quiet.touch("q-missing", 3600))
_, qtoken = quiet.gets("q")
step("noreply cas", lambda: quiet.cas("q", b"cas", qtoken, noreply=True))
step("noreply cas stale", lambda: quiet.cas("q", b"stale", qtoken, noreply=True))
step("get after noreply cas", lambda: quiet.get("q"))
step("noreply delete", lambda: quiet.delete("q"))
step("noreply delete missing", lambda: quiet.delete("q"))
step("get after noreply delete", lambda: quiet.get("q"))
step("noreply set many", lambda: quiet.set_many({"m1": b"1", "m2": b"2"}))
step("noreply delete_many", lambda: quiet.delete_many(["m1", "missing"]))
step("get_many after the many", lambda: sorted(quiet.get_many(["m1", "m2"]).items()))
step("noreply flush_all", lambda: quiet.flush_all())
step("get after noreply flush_all", lambda: quiet.get_many(["m2", "greeting", "counter"]))
quiet.close()

step("flush_all replied", lambda: mc.flush_all())
step("get after flush_all", lambda: mc.get("added"))

stats = mc.stats()
version = mc.version()
mc.quit()
print(
    json.dumps(
        {
            "steps": steps,
            # pymemcache converts values it knows to numbers: report the keys and their types.
            "stats": {key.decode(): type(value).__name__ for key, value in stats.items()},
            "version": version.decode(),
        }
    )
)
