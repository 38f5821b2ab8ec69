#!/usr/bin/env python3
"""runlet against crun and runc, side by side. Run through scripts/bench.

Every comparison is interleaved (A B C A B C ...) so that machine noise hits
all runtimes alike; results are min / median / p95 and the ratio of medians.
Writes docs/benchmarks.md and docs/bench-latency.svg.
"""

import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/runlet-target")) / "x86_64-unknown-linux-gnu"
RUNLET = str(TARGET / "release" / "runlet")
PRECOMPILE = str(TARGET / "release" / "examples" / "precompile")
ITER = int(os.environ.get("BENCH_ITER", "40"))
WORK = Path(tempfile.mkdtemp(prefix="runlet-bench-", dir="/var/tmp"))
CACHE = WORK / "wasm-cache"
os.environ["RUNLET_WASM_CACHE"] = str(CACHE)

RUNTIMES = {"runlet": RUNLET, "crun": shutil.which("crun"), "runc": shutil.which("runc")}
RUNTIMES = {k: v for k, v in RUNTIMES.items() if v}
# runlet re-executes itself from a read-only mount of its binary before
# create/run/exec (CVE-2019-5736, docs/security.md) unless the binary already
# is on one; docs/integrations.md shows how to install it that way. Measure
# both: a copy of the binary, bind-mounted read-only in this private
# namespace, is "runlet-ro".
RUNLET_RO = str(WORK / "runlet-ro")
PAUSE_S = float(os.environ.get("BENCH_PAUSE_MS", "25")) / 1000


def setup_readonly_copy():
    shutil.copy(RUNLET, RUNLET_RO)
    r = subprocess.run(["sh", "-c", f"mount --bind {RUNLET_RO} {RUNLET_RO} && mount -o remount,bind,ro {RUNLET_RO}"])
    return r.returncode == 0


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def quiet(*args):
    return subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def bundle(name, args, files=()):
    """A busybox bundle running `args`, with extra files copied into /app."""
    d = WORK / name
    root = d / "rootfs"
    for sub in ("bin", "proc", "sys", "dev", "tmp", "etc", "app"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", root / "bin/busybox")
    for a in ("sh", "true", "sleep", "echo"):
        link = root / "bin" / a
        if not link.exists():
            link.symlink_to("busybox")
    for f in files:
        shutil.copy(f, root / "app" / Path(f).name)
    cfg = d / "config.json"
    if cfg.exists():
        cfg.unlink()
    sh(RUNLET, "spec", "--bundle", str(d))
    c = json.loads(cfg.read_text())
    c["process"]["terminal"] = False
    c["process"]["args"] = list(args)
    cfg.write_text(json.dumps(c))
    return str(d)


def timed(args, stdout=subprocess.DEVNULL):
    t = time.perf_counter()
    r = subprocess.run(args, stdout=stdout, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    ms = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        raise RuntimeError(f"{args} exited {r.returncode}")
    return ms


def stats(v):
    v = sorted(v)
    p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
    return {"min": v[0], "median": statistics.median(v), "p95": p95, "n": len(v), "all": v}


def interleave(cases, iterations=ITER):
    """cases: {label: callable returning ms}; runs them round-robin."""
    out = {k: [] for k in cases}
    for _ in range(iterations):
        for k, f in cases.items():
            out[k].append(f())
    return {k: stats(v) for k, v in out.items()}


def root_for(rt):
    return str(WORK / f"state-{rt}")


# ---------------------------------------------------------------- native
def bench_native(with_ro):
    b = bundle("native", ["true"])
    runs, steps, paused = {}, {}, {}
    runtimes = dict(RUNTIMES)
    if with_ro:
        runtimes = {"runlet": RUNLET, "runlet-ro": RUNLET_RO, **{k: v for k, v in RUNTIMES.items() if k != "runlet"}}
    for rt, binary in runtimes.items():
        runs[rt] = lambda binary=binary, rt=rt: timed([binary, "--root", root_for(rt), "run", "--bundle", b, "bench"])

        def after_pause(binary=binary, rt=rt):
            time.sleep(PAUSE_S)
            return timed([binary, "--root", root_for(rt), "run", "--bundle", b, "bench"])

        paused[rt] = after_pause

        def cycle(binary=binary, rt=rt):
            t = time.perf_counter()
            for verb in (["create", "--bundle", b, "bench"], ["start", "bench"], ["delete", "--force", "bench"]):
                r = quiet(binary, "--root", root_for(rt), *verb)
                if r.returncode != 0:
                    raise RuntimeError(f"{rt} {verb[0]} failed")
            return (time.perf_counter() - t) * 1000

        steps[rt] = cycle
    return interleave(runs), interleave(steps), interleave(paused)


# ---------------------------------------------------------------- profile
# Where one native `run` spends its system calls, by phase. `strace -ff`
# writes one file per process; the phases are cut at landmarks every runtime
# passes: the first syscall naming config.json (start-up and the protective
# re-exec end), the clone of the container's first process (config, state
# and cgroup set-up end), pivot_root in the container's init (the rootfs is
# made), the workload's execve (the runtime's part of the init ends) and the
# first rmdir after it in the main process (delete begins).
PHASES = [
    ("main", "start-up, arguments, protective re-exec"),
    ("main", "config load and compat, state, cgroup set-up"),
    ("intermediate", "intermediate: namespaces, cgroup join"),
    ("init", "init: namespaces, rootfs and mounts (to pivot_root)"),
    ("init", "init: after pivot_root (procfs checks, caps, seccomp, exec)"),
    ("main", "main while the container runs (start, wait)"),
    ("main", "delete"),
    ("other", "other processes (helpers, hooks)"),
]
# runc is a Go program: its goroutines run on threads that strace reports as
# processes of their own, and the landmarks land on whichever thread made the
# call, so only its total is shown.
TOTAL_ONLY = {"runc"}
SYSCALL_RE = re.compile(r"^(?:\d+\.\d+ )?([a-z_0-9]+)\((.*)\)\s+=\s+(-?\d+|\?)")


def strace_files(rt, binary, b, n):
    out = WORK / f"strace-{rt}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    subprocess.run(["strace", "-ff", "-qq", "-s", "256", "-o", str(out / "t"), binary, "--root", root_for(rt),
                    "run", "--bundle", b, "prof"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, check=True)
    procs = {}
    for f in out.iterdir():
        calls = []
        for line in f.read_text(errors="replace").splitlines():
            m = SYSCALL_RE.match(line)
            if m:
                calls.append((m.group(1), m.group(2), m.group(3)))
        procs[int(f.name.split(".")[1])] = calls
    shutil.rmtree(out, ignore_errors=True)
    return procs


def split_phases(procs, binary):
    """{phase label: syscall count} and {syscall: count} for the runtime's part."""
    children = {pid: [int(r) for name, _, r in calls if name in ("clone", "clone3", "fork", "vfork") and r.isdigit()
                      and int(r) in procs] for pid, calls in procs.items()}
    parents = {c: p for p, cs in children.items() for c in cs}
    main = next(p for p in procs if p not in parents)

    def workload_exec(calls):
        for i, (name, args, ret) in enumerate(calls):
            if name in ("execve", "execveat") and ret == "0" and not args.startswith(f'"{binary}"') \
                    and not args.startswith('"/proc/self/exe"') and not re.match(r'\d+, ""', args):
                return i
        return None

    init = next((p for p, calls in procs.items() if p != main and workload_exec(calls) is not None), None)
    line = []  # the init's ancestors below main
    p = init
    while p is not None and p in parents and parents[p] != main:
        p = parents[p]
        line.append(p)
    first = line[-1] if line else init
    count = {label: 0 for _, label in PHASES}
    names = {}

    def add(label, calls):
        count[label] += len(calls)
        for name, _, _ in calls:
            names[name] = names.get(name, 0) + 1

    m = procs[main]
    a = next((i for i, (_, args, _) in enumerate(m) if "config.json" in args), 0)
    c = next((i for i, (name, _, r) in enumerate(m) if name in ("clone", "clone3", "fork", "vfork")
              and r.isdigit() and int(r) == first), len(m))
    d = next((i for i in range(c, len(m)) if m[i][0] == "rmdir" or (m[i][0] == "unlinkat" and "AT_REMOVEDIR" in m[i][1])),
             len(m))
    add(PHASES[0][1], m[:a])
    add(PHASES[1][1], m[a:c])
    add(PHASES[5][1], m[c:d])
    add(PHASES[6][1], m[d:])
    for p in line:
        add(PHASES[2][1], procs[p])
    if init is not None:
        calls = procs[init]
        e = workload_exec(calls)
        pv = next((i for i, (name, _, _) in enumerate(calls) if name in ("pivot_root", "chroot")), e)
        add(PHASES[3][1], calls[:pv + 1])
        add(PHASES[4][1], calls[pv + 1:e + 1])
    for p, calls in procs.items():
        if p != main and p != init and p not in line:
            add(PHASES[7][1], calls)
    return count, names


def cpu_ms_per_run(binary, rt, b, n=10):
    """User + system CPU of the runtime's processes per `run`, from the
    rusage of reaped children (the container's init is reaped by the
    runtime, so its CPU is included, as is the workload's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        quiet(binary, "--root", root_for(rt), "run", "--bundle", b, "cpu")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"user": (after.ru_utime - before.ru_utime) * 1000 / n, "sys": (after.ru_stime - before.ru_stime) * 1000 / n}


def profiled_runtimes(with_ro):
    """The binaries the profile compares: runlet, runlet-ro when the
    read-only copy could be made, and the peers that are installed."""
    runtimes = {"runlet": RUNLET, "runlet-ro": RUNLET_RO if with_ro else None,
                "crun": RUNTIMES.get("crun"), "runc": RUNTIMES.get("runc")}
    return {k: v for k, v in runtimes.items() if v}


def bench_profile(runtimes):
    if not shutil.which("strace"):
        return None
    b = bundle("prof", ["true"])
    out = {}
    for rt, binary in runtimes.items():
        runs = [split_phases(strace_files(rt, binary, b, i), binary) for i in range(3)]
        runs.sort(key=lambda r: sum(r[0].values()))
        phases, names = runs[1]
        out[rt] = {"phases": phases, "total": sum(phases.values()), "names": names,
                   "cpu": cpu_ms_per_run(binary, rt, b)}
    return out


def profile_section(prof):
    if prof is None:
        return ["## Profile: where a native `run` goes", "", "strace is not installed: not measured.", ""]
    rts = list(prof)
    md = ["## Profile: where a native `run` goes",
          "System calls of one `run` of /bin/true (the median of 3 by total), from `strace -ff`, cut into phases at "
          "landmarks every runtime passes (scripts/bench.py, `split_phases`); the workload's own calls after its "
          "execve are left out. CPU is user + system time of the runtime's processes and the container per `run` "
          "(rusage of reaped children, 10 runs). runlet-ro is the same binary on a read-only mount (no protective "
          "re-exec); runc shows its total only (its threads blur the phases).",
          "",
          "| phase | " + " | ".join(rts) + " |",
          "|---|" + "---|" * len(rts)]
    for _, label in PHASES:
        md.append(f"| {label} | " + " | ".join("—" if r in TOTAL_ONLY else str(prof[r]["phases"][label])
                                               for r in rts) + " |")
    md.append("| **total syscalls** | " + " | ".join(f"**{prof[r]['total']}**" for r in rts) + " |")
    md.append("| CPU ms per run (user + sys) | " + " | ".join(
        f"{prof[r]['cpu']['user']:.1f} + {prof[r]['cpu']['sys']:.1f}" for r in rts) + " |")
    md += ["", "The most frequent calls:", "", "| runtime | top calls |", "|---|---|"]
    for r in rts:
        top = sorted(prof[r]["names"].items(), key=lambda kv: -kv[1])[:10]
        md.append(f"| {r} | " + ", ".join(f"{n} {c}" for n, c in top) + " |")
    notes = REPO / "docs/profile-changes.md"
    if notes.exists():
        md += ["", notes.read_text().strip()]
    md.append("")
    return md


# ---------------------------------------------------------------- wasm
def bench_wasm():
    fx = REPO / "tests/fixtures/wasm"
    native = bundle("wnative", ["true"])
    p1 = bundle("p1", ["/app/probe-p1.wasm", "hello"], [fx / "probe-p1.wasm"])
    p2 = bundle("p2", ["/app/probe-p2.wasm", "hello"], [fx / "probe-p2.wasm"])
    run = lambda b: timed([RUNLET, "--root", root_for("w"), "run", "--bundle", b, "bench"])

    def cold(b):
        shutil.rmtree(CACHE, ignore_errors=True)
        return run(b)

    run(p1), run(p2)  # warm the cache
    warm = interleave({"native /bin/true": lambda: run(native), "wasm p1 warm": lambda: run(p1),
                       "wasm p2 warm": lambda: run(p2)})
    colds = interleave({"wasm p1 cold": lambda: cold(p1), "wasm p2 cold": lambda: cold(p2)}, max(5, ITER // 4))
    run(p1), run(p2)
    return warm, colds, (native, p1, p2)


def first_output(b, iterations=ITER):
    """ms from invoking `start` to the container's first byte of output."""
    samples = []
    for _ in range(iterations):
        r, w = os.pipe()
        subprocess.run([RUNLET, "--root", root_for("fo"), "create", "--bundle", b, "fo"],
                       stdout=w, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)
        os.close(w)
        t = time.perf_counter()
        subprocess.run([RUNLET, "--root", root_for("fo"), "start", "fo"], check=True)
        os.read(r, 1)
        samples.append((time.perf_counter() - t) * 1000)
        os.close(r)
        quiet(RUNLET, "--root", root_for("fo"), "delete", "--force", "fo")
    return stats(samples)


def bench_first_output(bundles):
    native_echo = bundle("echo", ["echo", "x"])
    _, p1, p2 = bundles
    return {"native echo": first_output(native_echo), "wasm p1": first_output(p1), "wasm p2": first_output(p2)}


# ---------------------------------------------------------------- cold cache per MB
def big_module():
    """A synthetic 1 MB+ core module: many functions doing integer work."""
    wat = WORK / "big.wat"
    funcs = []
    for i in range(6000):
        body = " ".join(f"(local.set 0 (i32.add (i32.mul (local.get 0) (i32.const {i * 7 + j})) (i32.const {j})))"
                        for j in range(12))
        funcs.append(f"(func $f{i} (param i32) (result i32) {body} (local.get 0))")
    wat.write_text("(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32)))"
                   " (memory (export \"memory\") 1) " + " ".join(funcs) +
                   " (func (export \"_start\") (drop (call $f0 (i32.const 1))) (call $exit (i32.const 0))))")
    wasm = WORK / "big.wasm"
    sh(PRECOMPILE, "wat2wasm", str(wat), str(wasm))
    return wasm


def bench_cold_per_mb():
    wasm = big_module()
    size_mb = wasm.stat().st_size / 1e6
    b = bundle("big", ["/app/big.wasm"], [wasm])
    samples = []
    for _ in range(max(3, ITER // 8)):
        shutil.rmtree(CACHE, ignore_errors=True)
        samples.append(timed([RUNLET, "--root", root_for("big"), "run", "--bundle", b, "bench"]))
    warm = stats([timed([RUNLET, "--root", root_for("big"), "run", "--bundle", b, "bench"]) for _ in range(10)])
    out = subprocess.run([PRECOMPILE, "compile", str(wasm), str(max(3, ITER // 8))], check=True,
                         capture_output=True, text=True).stdout.split()
    plain = stats([float(x) for x in out])
    cold = stats(samples)
    return {"size_mb": size_mb, "cold": cold, "warm": warm, "plain": plain,
            "penalty_ms_per_mb": (cold["median"] - warm["median"]) / size_mb,
            "plain_ms_per_mb": plain["median"] / size_mb}


# ---------------------------------------------------------------- memory
def peak_rss_create(rt, binary, b):
    """Max RSS of the runtime's own process during `create`, via GNU time
    (wait4 from Python would include Python's pre-exec RSS)."""
    samples = []
    for _ in range(10):
        # Output to a file: the created container inherits stdio, so a pipe
        # would not close until the container is deleted.
        out = WORK / "maxrss"
        subprocess.run(["/usr/bin/time", "-o", str(out), "-f", "%M", binary, "--root", root_for(rt), "create",
                        "--bundle", b, "rss"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, check=True)
        samples.append(int(out.read_text().strip().splitlines()[-1]) / 1024)  # KiB -> MiB
        quiet(binary, "--root", root_for(rt), "delete", "--force", "rss")
    return stats(samples)


def pss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def idle_pss(b, n=50):
    root = root_for("pss")
    pids = []
    for i in range(n):
        sh(RUNLET, "--root", root, "run", "-d", "--bundle", b, f"idle{i}", stdout=subprocess.DEVNULL)
        st = json.loads(subprocess.run([RUNLET, "--root", root, "state", f"idle{i}"], capture_output=True,
                                       check=True).stdout)
        pids.append(st["pid"])
    time.sleep(1.0)
    total = sum(pss_kib(p) for p in pids)
    for i in range(n):
        quiet(RUNLET, "--root", root, "delete", "--force", f"idle{i}")
    return {"containers": n, "total_mib": total / 1024, "per_container_mib": total / 1024 / n}


def bench_memory():
    fx = REPO / "tests/fixtures/wasm"
    b = bundle("rss", ["sleep", "1"])
    rss = {rt: peak_rss_create(rt, binary, b) for rt, binary in RUNTIMES.items()}
    sleeper = bundle("idle-native", ["sleep", "3600"])
    wsleeper = bundle("idle-wasm", ["/app/probe-p1.wasm", "sleep", "3600"], [fx / "probe-p1.wasm"])
    return rss, {"native busybox sleep": idle_pss(sleeper), "wasm p1 sleep": idle_pss(wsleeper)}


# ---------------------------------------------------------------- throughput
def bench_throughput(k=4, n=80):
    b = bundle("tp", ["true"])
    out = {}
    for rt, binary in RUNTIMES.items():
        def one(i, binary=binary, rt=rt):
            r = quiet(binary, "--root", root_for(rt), "run", "--bundle", b, f"tp{i}")
            return r.returncode
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=k) as pool:
            codes = list(pool.map(one, range(n)))
        elapsed = time.perf_counter() - t
        out[rt] = {"per_second": n / elapsed, "failed": sum(1 for c in codes if c != 0)}
    return {"parallel": k, "containers": n, "results": out}


# ---------------------------------------------------------------- wasm services
import socket
import urllib.request

HTTP_FIXTURE = REPO / "tests/fixtures/wasm/http-probe.wasm"
SERVICE_N = int(os.environ.get("BENCH_SERVICES", "1000"))
WASMTIME_CLI_DIR = Path(os.environ.get("BENCH_WASMTIME_CLI_DIR", "/var/tmp/runlet-bench-wasmtime-cli"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(port, timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def wait_200(port, deadline_s=60.0):
    """Polls until the first HTTP 200; returns when it came (perf_counter)."""
    end = time.perf_counter() + deadline_s
    while time.perf_counter() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                if c.recv(16).startswith(b"HTTP/1.1 200"):
                    return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.0002)
    raise RuntimeError(f"no HTTP 200 on port {port}")


def service_bundle(name, port):
    """The hello wasi:http component in the host network namespace on `port`."""
    d = bundle(name, ["/app/http-probe.wasm"], [HTTP_FIXTURE])
    cfg = Path(d) / "config.json"
    c = json.loads(cfg.read_text())
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
    c["process"]["env"].append(f"WASMTIME_HTTP_PROXY_SOCKET_ADDR=127.0.0.1:{port}")
    cfg.write_text(json.dumps(c))
    return d


def wrk(port, connections, seconds=5):
    """requests/s and p50/p99 latency (ms) from wrk, bounded in time."""
    threads = 1 if connections == 1 else 2
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else (v * 1000 if unit == "s" else v)

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "non2xx": int(errors.group(1)) if errors else 0}


def wasmtime_cli():
    """`wasmtime serve` 48.0.8, built into a directory of the bench's own
    when BENCH_WASMTIME_CLI=1 (about 15 minutes on 2 cores)."""
    binary = WASMTIME_CLI_DIR / "bin" / "wasmtime"
    if binary.exists():
        return str(binary)
    if os.environ.get("BENCH_WASMTIME_CLI") != "1":
        return None
    print("building wasmtime-cli 48.0.8 (BENCH_WASMTIME_CLI=1) ...", flush=True)
    sh("cargo", "install", "--quiet", "--locked", "wasmtime-cli", "--version", "=48.0.8", "--root",
       str(WASMTIME_CLI_DIR), "--target-dir", str(WASMTIME_CLI_DIR / "target"))
    return str(binary)


def bench_services():
    root = root_for("svc")
    out = {"load": {}, "start": {}, "pss": None, "capacity": None}

    # Load at 1, 16 and 64 connections: runlet, and wasmtime serve if built.
    port = free_port()
    b = service_bundle("svc", port)
    sh(RUNLET, "--root", root, "run", "-d", "--bundle", b, "svc", stdout=subprocess.DEVNULL)
    wait_200(port)
    servers = {"runlet": port}
    cli = wasmtime_cli()
    cli_proc = None
    if cli:
        cport = free_port()
        cli_proc = subprocess.Popen([cli, "serve", "-Scli", "--addr", f"127.0.0.1:{cport}", str(HTTP_FIXTURE)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_200(cport)
        servers["wasmtime serve"] = cport
    for conns in (1, 16, 64):
        for name, p in servers.items():  # side by side, alternating
            out["load"][(name, conns)] = wrk(p, conns)
    quiet(RUNLET, "--root", root, "delete", "--force", "svc")
    if cli_proc:
        cli_proc.terminate()
        cli_proc.wait()

    # From `runlet start` (and from `run -d`) to the first HTTP 200.
    def start_to_200(cold):
        p = free_port()
        bb = service_bundle("svc-start", p)
        if cold:
            shutil.rmtree(CACHE, ignore_errors=True)
        sh(RUNLET, "--root", root, "create", "--bundle", bb, "st", stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        sh(RUNLET, "--root", root, "start", "st")
        ms = (wait_200(p) - t) * 1000
        quiet(RUNLET, "--root", root, "delete", "--force", "st")
        return ms

    def run_to_200(cold):
        p = free_port()
        bb = service_bundle("svc-run", p)
        if cold:
            shutil.rmtree(CACHE, ignore_errors=True)
        t = time.perf_counter()
        sh(RUNLET, "--root", root, "run", "-d", "--bundle", bb, "rt", stdout=subprocess.DEVNULL)
        ms = (wait_200(p) - t) * 1000
        quiet(RUNLET, "--root", root, "delete", "--force", "rt")
        return ms

    n = max(5, ITER // 4)
    out["start"] = {
        "start → 200, warm cache": stats([start_to_200(False) for _ in range(ITER)]),
        "run -d → 200, warm cache": stats([run_to_200(False) for _ in range(ITER)]),
        "run -d → 200, cold cache": stats([run_to_200(True) for _ in range(n)]),
    }

    # Idle PSS at 50 serving containers, then how many this machine holds.
    def start_many(count, prefix):
        ports, pids = [], []
        for i in range(count):
            p = free_port()
            bb = service_bundle("svc-many", p)
            r = quiet(RUNLET, "--root", root, "run", "-d", "--bundle", bb, f"{prefix}{i}")
            if r.returncode != 0:
                break
            st = json.loads(subprocess.run([RUNLET, "--root", root, "state", f"{prefix}{i}"],
                                           capture_output=True, check=True).stdout)
            ports.append(p)
            pids.append(st["pid"])
        return ports, pids

    def stop_many(count, prefix):
        for i in range(count):
            quiet(RUNLET, "--root", root, "delete", "--force", f"{prefix}{i}")

    ports, pids = start_many(50, "idle")
    for p in ports:
        wait_200(p)
    time.sleep(1.0)
    total = sum(pss_kib(p) for p in pids)
    out["pss"] = {"containers": len(pids), "per_container_mib": total / 1024 / max(1, len(pids))}
    stop_many(50, "idle")

    if SERVICE_N > 0:
        t = time.perf_counter()
        ports, pids = start_many(SERVICE_N, "cap")
        started = len(ports)
        answered = sum(1 for p in ports if http_ok(p, timeout=10))
        mem = int(Path("/proc/meminfo").read_text().split("MemAvailable:")[1].split()[0]) // 1024
        total = sum(pss_kib(p) for p in pids)
        out["capacity"] = {"asked": SERVICE_N, "started": started, "answered": answered,
                           "seconds": time.perf_counter() - t, "pss_mib": total / 1024,
                           "mem_available_mib": mem}
        stop_many(SERVICE_N, "cap")
    return out


# ---------------------------------------------------------------- report
def version(binary):
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def machine():
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}"


def fmt(s):
    return f"{s['min']:.2f} | {s['median']:.2f} | {s['p95']:.2f}"


def table_vs_runlet(results):
    """Runtimes side by side; the ratio is runlet's median over the peer's."""
    rows = ["| runtime | min ms | median ms | p95 ms | runlet / this |", "|---|---|---|---|---|"]
    for k, s in results.items():
        ratio = "" if k == "runlet" else f"{results['runlet']['median'] / s['median']:.2f}"
        rows.append(f"| {k} | {fmt(s)} | {ratio} |")
    return "\n".join(rows)


def table_vs(results, base):
    """Cases side by side; the ratio is each median over the base case's."""
    rows = ["| case | min ms | median ms | p95 ms | this / " + base + " |", "|---|---|---|---|---|"]
    for k, s in results.items():
        ratio = "" if k == base else f"{s['median'] / results[base]['median']:.2f}"
        rows.append(f"| {k} | {fmt(s)} | {ratio} |")
    return "\n".join(rows)


def svg_chart(groups, path):
    """Horizontal box plots (min, p25, median, p75, p95) per case."""
    rows = [(g, k, s) for g, res in groups for k, s in res.items()]
    width, left, row_h, top = 900, 260, 26, 40
    height = top + row_h * len(rows) + 40
    vmax = max(s["p95"] for _, _, s in rows) * 1.1
    x = lambda v: left + (width - left - 30) * v / vmax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="20" font-size="14">Latency per invocation (ms): box p25–p75, whiskers min–p95, line median</text>']
    colors = {"runlet-ro": "#7fb3dc", "runlet": "#2b7bb9", "crun": "#d9822b", "runc": "#5a9e4b"}
    for i, (g, k, s) in enumerate(rows):
        y = top + i * row_h
        v = s["all"]
        q1, q3 = v[len(v) // 4], v[(3 * len(v)) // 4]
        c = next((col for name, col in colors.items() if k.startswith(name)), "#7a5cb0")
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{g}: {k}</text>')
        parts.append(f'<line x1="{x(s["min"]):.1f}" x2="{x(s["p95"]):.1f}" y1="{y + 11}" y2="{y + 11}" stroke="{c}"/>')
        parts.append(f'<rect x="{x(q1):.1f}" y="{y + 3}" width="{max(1, x(q3) - x(q1)):.1f}" height="16" fill="{c}" fill-opacity="0.35" stroke="{c}"/>')
        parts.append(f'<line x1="{x(s["median"]):.1f}" x2="{x(s["median"]):.1f}" y1="{y + 1}" y2="{y + 21}" stroke="black" stroke-width="2"/>')
        parts.append(f'<text x="{x(s["p95"]) + 6:.1f}" y="{y + 15}" fill="#444">{s["median"]:.1f}</text>')
    axis_y = top + row_h * len(rows) + 10
    parts.append(f'<line x1="{left}" x2="{width - 30}" y1="{axis_y}" y2="{axis_y}" stroke="#888"/>')
    step = max(1, int(vmax / 8))
    for t in range(0, int(vmax) + 1, step):
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#444">{t}</text>')
    parts.append("</svg>")
    Path(path).write_text("\n".join(parts))


def profile_only():
    """`scripts/bench profile`: the profile section alone, printed, for
    working on start-up cost; docs/benchmarks.md is left as it is."""
    with_ro = setup_readonly_copy()
    print("\n".join(profile_section(bench_profile(profiled_runtimes(with_ro)))))
    subprocess.run(["umount", RUNLET_RO], stderr=subprocess.DEVNULL)
    shutil.rmtree(WORK, ignore_errors=True)


def main():
    if os.geteuid() != 0:
        sys.exit("bench: run as root (containers need namespaces and cgroups)")
    if sys.argv[1:] == ["profile"]:
        return profile_only()
    print(f"bench: runtimes {', '.join(RUNTIMES)}; {ITER} iterations; work dir {WORK}", flush=True)
    with_ro = setup_readonly_copy()
    run, steps, paused = bench_native(with_ro)
    print("native done", flush=True)
    prof = bench_profile(profiled_runtimes(with_ro))
    print("profile done", flush=True)
    warm, colds, bundles = bench_wasm()
    first = bench_first_output(bundles)
    print("wasm done", flush=True)
    per_mb = bench_cold_per_mb()
    print("cold-per-MB done", flush=True)
    rss, pss = bench_memory()
    print("memory done", flush=True)
    tput = bench_throughput()
    print("throughput done", flush=True)
    svc = bench_services()
    print("services done", flush=True)

    crun_ratio = run["runlet"]["median"] / run["crun"]["median"] if "crun" in run else None
    steps_ratio = steps["runlet"]["median"] / steps["crun"]["median"] if "crun" in steps else None
    sys_runlet = prof["runlet"]["total"] if prof else None
    sys_crun = prof["crun"]["total"] if prof and "crun" in prof else None
    tp = tput["results"]
    tp_ratio = tp["runlet"]["per_second"] / tp["crun"]["per_second"] if "crun" in tp else None
    rss_runlet = rss["runlet"]["median"]
    wasm_ratio = warm["wasm p1 warm"]["median"] / warm["native /bin/true"]["median"]
    wasm_pss = pss["wasm p1 sleep"]["per_container_mib"]
    load16 = svc["load"][("runlet", 16)]
    warm200 = svc["start"]["start → 200, warm cache"]["median"]
    vs_cli = (svc["load"][("runlet", 16)]["rps"] / svc["load"][("wasmtime serve", 16)]["rps"]
              if ("wasmtime serve", 16) in svc["load"] else None)
    targets = [
        ("native `run` median ≤ 0.90× crun", f"{crun_ratio:.2f}×" if crun_ratio else "crun absent",
         crun_ratio is not None and crun_ratio <= 0.90),
        ("native `create` + `start` + `delete` median ≤ 0.90× crun",
         f"{steps_ratio:.2f}×" if steps_ratio else "crun absent", steps_ratio is not None and steps_ratio <= 0.90),
        ("syscalls per native `run` ≤ crun's", f"{sys_runlet} vs {sys_crun}" if sys_crun else "not measured",
         sys_runlet <= sys_crun if sys_crun else None),
        ("4 `run`s in parallel: containers/s ≥ crun's", f"{tp_ratio:.2f}×" if tp_ratio else "crun absent",
         tp_ratio is not None and tp_ratio >= 1.0),
        ("peak RSS of the runtime during `create` ≤ 5 MiB", f"{rss_runlet:.2f} MiB", rss_runlet <= 5.0),
        ("Wasm warm `run` ≤ 1.10× runlet native", f"{wasm_ratio:.2f}×", wasm_ratio <= 1.10),
        ("idle Wasm container PSS ≤ 2 MB", f"{wasm_pss:.2f} MiB", wasm_pss <= 2.0),
        ("cold-cache penalty (ms per MB of Wasm)", f"{per_mb['penalty_ms_per_mb']:.1f} vs plain wasmtime {per_mb['plain_ms_per_mb']:.1f}", None),
        ("wasi:http p99 < 5 ms at 16 connections", f"{load16['p99']:.2f} ms", load16["p99"] < 5),
        ("wasi:http requests/s ≥ 1.0× `wasmtime serve` (16 connections)",
         f"{vs_cli:.2f}×" if vs_cli else "not measured (BENCH_WASMTIME_CLI=1 builds it)",
         vs_cli >= 1.0 if vs_cli else None),
        ("`start` → first HTTP 200 < 20 ms, warm cache", f"{warm200:.2f} ms", warm200 < 20),
        ("idle wasi:http service PSS ≤ 2 MB", f"{svc['pss']['per_container_mib']:.2f} MiB",
         svc["pss"]["per_container_mib"] <= 2.0),
        ("idle wasi:http services held, each answering (aim 1000)",
         f"{svc['capacity']['answered']} of {svc['capacity']['asked']}" if svc["capacity"] else "not run",
         svc["capacity"]["answered"] >= 1000 if svc["capacity"] else None),
    ]
    md = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench` — do not edit by hand. Timings on shared machines are noisy:",
        "compare ratios within one run, not absolute figures across runs.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {machine()}",
        f"- {version(RUNLET)}; wasmtime 48.0.8 embedded. `runlet-ro` is the same binary installed on a "
        "read-only mount, which skips its protective re-exec (docs/security.md).",
        *[f"- {version(b)}" for rt, b in RUNTIMES.items() if rt != "runlet"],
        f"- iterations: {ITER} per case, interleaved; the whole run happens in a private mount namespace "
        "where the host's hybrid cgroup2 mount (hugetlb only) is unmounted, because crun refuses hybrid mode; "
        "all three runtimes see the same (v1) hierarchy.",
        "",
        "## Targets",
        "| target | measured | met |",
        "|---|---|---|",
        *[f"| {t} | {m} | {'yes' if ok else ('—' if ok is None else 'no')} |" for t, m, ok in targets],
        "",
        "## Native: `run` of /bin/true",
        table_vs_runlet(run),
        "",
        f"## Native: `run` of /bin/true, each invocation after {PAUSE_S * 1000:.0f} ms idle",
        "On these cgroup-v1 hosts the first migration into a cgroup after a quiet spell waits for an "
        "RCU grace period in the kernel (several ms, for every runtime). Back to back, a runtime whose "
        "runs are short enough keeps catching the previous grace period and skips the wait; after an "
        "idle pause nobody does. Both views are shown.",
        "",
        table_vs_runlet(paused),
        "",
        "## Native: `create` + `start` + `delete --force` as three invocations",
        table_vs_runlet(steps),
        "",
        *profile_section(prof),
        "## Wasm: `run` with a warm cache, against runlet's native run",
        table_vs(warm, "native /bin/true"),
        "",
        "## Wasm: `run` with a cold cache (compile and store, then run)",
        table_vs({**colds, "native /bin/true": warm["native /bin/true"]}, "native /bin/true"),
        "",
        "## From `start` to the container's first byte of output",
        table_vs(first, "native echo"),
        "",
        f"## Cold cache per MB: a synthetic {per_mb['size_mb']:.2f} MB module",
        "| case | min ms | median ms | p95 ms |",
        "|---|---|---|---|",
        f"| runlet run, cold cache | {fmt(per_mb['cold'])} |",
        f"| runlet run, warm cache | {fmt(per_mb['warm'])} |",
        f"| plain wasmtime `Engine::precompile_module` (examples/precompile.rs) | {fmt(per_mb['plain'])} |",
        "",
        f"Cold-cache penalty (cold − warm median): **{per_mb['penalty_ms_per_mb']:.1f} ms per MB**; "
        f"the compiler alone: {per_mb['plain_ms_per_mb']:.1f} ms per MB.",
        "",
        "## Memory",
        "Peak RSS of the runtime process during `create` (MiB, from GNU time):",
        "",
        "| runtime | min | median | p95 |",
        "|---|---|---|---|",
        *[f"| {rt} | {s['min']:.2f} | {s['median']:.2f} | {s['p95']:.2f} |" for rt, s in rss.items()],
        "",
        "PSS of idle containers (sum of /proc/<init>/smaps_rollup):",
        "",
        "| containers | total MiB | per container MiB |",
        "|---|---|---|",
        *[f"| 50 × {k} | {v['total_mib']:.1f} | {v['per_container_mib']:.2f} |" for k, v in pss.items()],
        "",
        f"## Throughput: {tput['containers']} `run`s of /bin/true, {tput['parallel']} at a time",
        "| runtime | containers/s | failed |",
        "|---|---|---|",
        *[f"| {rt} | {r['per_second']:.1f} | {r['failed']} |" for rt, r in tput["results"].items()],
        "",
        "## Wasm services: the hello wasi:http component",
        "Served by runlet inside the container (host network namespace, 127.0.0.1), one instance per request; "
        "`wrk` on the same 2 cores, 5 s per case, runlet and `wasmtime serve` alternating.",
        "",
        "| server | connections | requests/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|",
        *[f"| {name} | {c} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['non2xx']} |"
          for (name, c), r in svc["load"].items()],
        "",
        table_vs(svc["start"], "start → 200, warm cache"),
        "",
        f"Idle PSS: {svc['pss']['per_container_mib']:.2f} MiB per serving container at {svc['pss']['containers']} containers "
        "(sum of the inits' /proc/<pid>/smaps_rollup).",
        "",
        *([f"Capacity: {c['started']} of {c['asked']} idle wasi:http containers started in {c['seconds']:.0f} s, "
           f"{c['answered']} answered a request; together {c['pss_mib']:.0f} MiB PSS, "
           f"{c['mem_available_mib']} MiB still available."] if (c := svc["capacity"]) else []),
        "",
        "## Latency distributions",
        "![latency](bench-latency.svg)",
        "",
    ]
    (REPO / "docs/benchmarks.md").write_text("\n".join(md))
    svg_chart([("native run", run), ("after idle", paused), ("create+start+delete", steps), ("wasm", warm),
               ("wasm cold", colds)],
              REPO / "docs/bench-latency.svg")
    print("\n".join(md[:28]))
    subprocess.run(["umount", RUNLET_RO], stderr=subprocess.DEVNULL)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
