# SPDX-License-Identifier: LGPL-2.1-or-later
"""One benchmark measurement inside a fresh virtual world (stdlib only).

Started by tests/bench/bench.py as

    vboard --board B --mode dfu|app --timing real --scale F --flash OLD@ADDR \
    -- python3 tests/bench/world.py SPEC.json RESULT.json

SPEC names the tool ("dfu-util", "flashd", "make-flash", "flashctl", or a
daemon-cost measurement), the image and what the flash must hold
afterwards. Every run starts from the same state because every run gets a
new vboard (started before the clock runs). After the run the virtual
flash is read through vboard's control socket and compared with the image
and with the untouched bootloader; a run whose flash is wrong is reported
as failed, never timed.
"""

import json
import resource
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "vboard"))

import harness  # noqa: E402
from vboard import BOOTLOADER_PATTERN, VBoard, klipper_reboot_request  # noqa: E402

ETX = b"\x03"


def now():
    return time.monotonic()


def read_flash(vb, b, address, length):
    out = b""
    while len(out) < length:
        n = min(60000, length - len(out))
        out += vb.read(b, address + len(out), n)
    return out


def check_flash(vb, spec, b=0):
    """The image at its address, the bootloader region untouched."""
    image = open(spec["image"], "rb").read()
    got = read_flash(vb, b, spec["address"], len(image))
    if got != image:
        first = next(i for i in range(len(image)) if got[i] != image[i])
        return f"flash differs from the image at 0x{spec['address'] + first:08x}"
    base = spec["flash_base"]
    boot = read_flash(vb, b, base, spec["address"] - base)
    pattern = (BOOTLOADER_PATTERN * (len(boot) // len(BOOTLOADER_PATTERN) + 1))[:len(boot)]
    if boot != pattern:
        return "the bootloader region changed"
    return None


def counters(vb):
    c = vb.stats(0)["counters"]
    return {k: c[k] for k in ("sector_erases", "bytes_written", "dnloads", "uploads", "bytes_uploaded",
                  "reenumerations", "baud_1200_requests") if k in c}


# ---- tools ------------------------------------------------------------------

def children_cpu():
    """CPU seconds (user + system) of the children reaped so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_dfu_util(spec, vb):
    n = spec.get("boards", 1)
    cpu0 = children_cpu()
    t0 = now()
    procs = []
    for i in range(n):
        args = ["dfu-util"]
        if spec.get("port_option") or n > 1:
            args += ["-p", vb.board(i)["port"]]
        if spec.get("port_option"):
            args += ["-R"]
        args += ["-a", "0", "-s", "0x%08x:leave" % spec["address"], "-D", spec["image"]]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=300)
        if p.returncode != 0:
            raise RuntimeError("dfu-util exit %d: %s" % (p.returncode, out.decode(errors="replace")[-600:]))
    t1 = now()
    return {"seconds": t1 - t0, "cpu": children_cpu() - cpu0}


def flashd_config():
    return "reboot_wait_sec = 10\nbootloader_timeout_sec = 60\napp_timeout_sec = 60\n"


def wait_listed(c, port, mode, timeout=20):
    def listed():
        d = harness.devices_by_port(c).get(port)
        return d if d and d.get("mode") == mode else None
    return harness.wait_for(listed, timeout=timeout, interval=0.01, what=f"{port} listed in {mode} mode")


def follow_job(c, job_id, t0, timeout=300, until="done"):
    """Times (since t0) at which the job first reached each state, until
    it reaches `until` or a final state."""
    return follow_jobs(c, [job_id], t0, timeout, until)[0]


def follow_jobs(c, job_ids, t0, timeout=300, until="done"):
    """follow_job() for several jobs at once: [seen] in job_ids' order."""
    seen = {i: {} for i in job_ids}
    deadline = now() + timeout
    while True:
        for n in c.notifications:
            j = n["params"][0] if n.get("method") == "notify_job_update" else None
            if j and j.get("id") in seen:
                s = seen[j["id"]]
                s.setdefault(j["state"], n["_t"] - t0)
                if j.get("phase"):
                    s.setdefault("phase:" + j["phase"], n["_t"] - t0)
        c.notifications = []
        if all(any(s in x for s in (until, "done", "failed", "cancelled")) for x in seen.values()):
            return [seen[i] for i in job_ids]
        if now() > deadline:
            raise TimeoutError(f"jobs {job_ids}: {seen}")
        msg = c._dispatch(c.recv_message(max(0.001, deadline - now())))
        if msg is None:
            c.notifications[-1]["_t"] = now()
        elif "id" in msg:
            c.responses[msg["id"]] = msg


def run_flashd(spec, vb):
    n = spec.get("boards", 1)
    ports = [vb.board(i)["port"] for i in range(n)]
    with harness.Flashd(config=flashd_config(), log_level="info") as d:
        c = d.client()
        for port in ports:
            wait_listed(c, port, spec["start_mode"])
        cpu0 = cpu_with_children(d.proc.pid)
        t0 = now()
        for i, port in enumerate(ports):
            params = {"target": port, "image": {"path": spec["image"]}, "address": spec["address"],
                      "verify": spec.get("verify", True)}
            c.send({"jsonrpc": "2.0", "method": "job.flash", "params": params, "id": 99 + i})
        # the replies and the notifications in arrival order
        while any(99 + i not in c.responses for i in range(n)):
            msg = c._dispatch(c.recv_message(30))
            if msg is None:
                c.notifications[-1]["_t"] = now()
            else:
                c.responses[msg["id"]] = msg
        job_ids = []
        for i in range(n):
            reply = c.responses.pop(99 + i)
            if "error" in reply:
                raise RuntimeError(f"job.flash: {reply['error']}")
            job_ids.append(reply["result"]["job"]["id"])
        # flash phase: from the request until the device left DFU mode
        # (the job then waits for the application, which dfu-util does
        # not; the world is thrown away, so flashd stops right there)
        seens = follow_jobs(c, job_ids, t0, until=spec.get("until", "done"))
        cpu = cpu_with_children(d.proc.pid) - cpu0
        for job_id in job_ids:
            job = c.call("job.get", {"job": job_id})["job"]
            if job["state"] not in ("done", spec.get("until", "done")):
                raise RuntimeError(f"job ended {job['state']}: {job.get('error')} {job.get('log')}")
        # the first job's log with the daemon's timestamps: the timeline
        out = {"states": seens[0], "log": job.get("log", []) if n == 1 else job.get("log", [])[-6:], "cpu": cpu}
        until = [s.get("waiting-for-app", s.get("done")) for s in seens]
        out["seconds"] = max(until)
        return out


def port_of_tty(tty):
    """The USB port path of a tty, as Klipper's flash_usb.py finds it: the
    sysfs link of the tty names its USB interface (1-1.3:1.0)."""
    link = os.readlink("/sys/class/tty/" + tty)
    parts = link.split("/")
    if "tty" not in parts or parts.index("tty") < 1:
        raise RuntimeError(f"no USB port for {tty} ({link})")
    return parts[parts.index("tty") - 1].split(":")[0]


def sysfs_id(port):
    try:
        with open(f"/sys/bus/usb/devices/{port}/idVendor") as f:
            v = f.read().strip()
        with open(f"/sys/bus/usb/devices/{port}/idProduct") as f:
            p = f.read().strip()
        return f"{v}:{p}"
    except OSError:
        return None


def run_make_flash(spec, vb):
    """Klipper's documented `make flash` steps for a USB DFU board
    (scripts/flash_usb.py), written from the description: 1200-baud
    request, poll every 100 ms (up to 4 s) for the DFU device on the same
    port, dfu-util -p PORT -R -a 0 -s ADDR:leave -D IMAGE, then poll every
    100 ms until the Klipper tty is back."""
    b = vb.board(0)
    by_id = b["by_id"]
    t0 = now()
    tty = b["tty"].rsplit("/", 1)[-1]
    port = port_of_tty(tty)
    klipper_reboot_request(by_id)
    for _ in range(40):
        time.sleep(0.1)
        if sysfs_id(port) == "0483:df11":
            break
    else:
        raise RuntimeError("no DFU device within 4 s")
    t_dfu = now()
    cpu0 = children_cpu()
    p = subprocess.run(["dfu-util", "-p", port, "-R", "-a", "0", "-s", "0x%08x:leave" % spec["address"],
                "-D", spec["image"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    t_du = now()
    text = p.stdout.decode(errors="replace")
    # dfu-util 0.11 with -R after :leave: the board is gone before the
    # detach/reset, "can't detach", exit 251 after a good download (the
    # false "failed" users see); the steps go on to wait for the tty.
    if p.returncode != 0 and "File downloaded successfully" not in text:
        raise RuntimeError("dfu-util exit %d: %s" % (p.returncode, text[-600:]))
    deadline = now() + 30
    while not os.path.exists(by_id):
        if now() > deadline:
            raise RuntimeError("the tty did not come back")
        time.sleep(0.1)
    t1 = now()
    return {"seconds": t1 - t0, "to_dfu": t_dfu - t0, "dfu_util": t_du - t_dfu, "tty_wait": t1 - t_du,
        "dfu_util_exit": p.returncode, "cpu": children_cpu() - cpu0}


def run_flashctl(spec, vb):
    b = vb.board(0)
    with harness.Flashd(config=flashd_config(), log_level="info") as d:
        c = d.client()
        wait_listed(c, b["port"], "app")
        env = dict(os.environ, NO_COLOR="1")
        cpu0 = cpu_with_children(d.proc.pid)
        args = [harness.flashctl_binary(), "--socket", d.socket_path, "flash", spec["target"], spec["image"]]
        if not spec.get("verify", True):
            args.append("--no-verify")
        t0 = now()
        p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # watch the job's states on a second connection meanwhile
        seen = {}
        deadline = t0 + 300
        while p.poll() is None and now() < deadline:
            try:
                msg = c.recv_message(0.005)
            except (TimeoutError, OSError):
                continue
            if msg.get("method") == "notify_job_update":
                j = msg["params"][0]
                seen.setdefault(j["state"], now() - t0)
                if j.get("phase"):
                    seen.setdefault("phase:" + j["phase"], now() - t0)
        out, _ = p.communicate(timeout=max(1, deadline - now()))
        t1 = now()
        if p.returncode != 0:
            raise RuntimeError("flashctl exit %d: %s" % (p.returncode, out.decode(errors="replace")[-800:]))
        # flashctl says done once the board runs the image; the tty is there
        if not os.path.exists(b["by_id"]):
            raise RuntimeError("flashctl returned before the tty was back")
        cpu = cpu_with_children(d.proc.pid) - cpu0
        jobs = c.call("job.list", {"all": True}).get("jobs", []) if spec.get("timeline") else []
        log = c.call("job.get", {"job": jobs[-1]["id"]})["job"].get("log", []) if jobs else []
        return {"seconds": t1 - t0, "states": seen, "cpu": cpu, "log": log}


def run_flashtool(spec, vb):
    """Katapult's flashtool.py from Klipper to Klipper: it sends the
    1200-baud request itself, waits for Katapult, writes and verifies, sends
    COMPLETE and exits; the clock stops when the Klipper tty is back
    (polled every 10 ms, so the poll adds little)."""
    b = vb.board(0)
    by_id = b["by_id"]
    cpu0 = children_cpu()
    t0 = now()
    p = subprocess.run([spec["python"], os.path.join(HERE, "flashtool-run.py"), spec["flashtool"], by_id,
                        spec["image"], str(os.getppid())],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    t_tool = now()
    if p.returncode != 0:
        raise RuntimeError("flashtool.py exit %d: %s" % (p.returncode, p.stdout.decode(errors="replace")[-600:]))
    deadline = now() + 30
    while not os.path.exists(by_id):
        if now() > deadline:
            raise RuntimeError("the tty did not come back")
        time.sleep(0.01)
    t1 = now()
    return {"seconds": t1 - t0, "tool": t_tool - t0, "tty_wait": t1 - t_tool, "cpu": children_cpu() - cpu0}


TOOLS = {"dfu-util": run_dfu_util, "flashd": run_flashd, "make-flash": run_make_flash, "flashctl": run_flashctl,
         "flashtool": run_flashtool}


def measure_tool(spec):
    vb = VBoard()
    n = spec.get("boards", 1)
    for i in range(n):
        b = vb.board(i)
        if b["mode"] != spec["start_mode"]:
            raise RuntimeError(f"board {i} starts in {b['mode']}, expected {spec['start_mode']}")
    before = counters(vb)
    out = TOOLS[spec["tool"]](spec, vb)
    for i in range(n):
        if spec.get("wait_app", True):
            vb.wait(i, "app", 30000)
        err = check_flash(vb, spec, i)
        if err:
            raise RuntimeError(f"board {i}: {err}")
    after = counters(vb)
    out["counters"] = {k: after[k] - before.get(k, 0) for k in after}
    return out


# ---- the daemon's own cost --------------------------------------------------

def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def kib(v):
    return int(v.split()[0])


def ctx_switches(pid):
    """voluntary + nonvoluntary context switches over all threads."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            st = proc_status(f"{pid}/task/{tid}")
        except OSError:
            continue
        total += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    return total


def ldd(path):
    """The shared libraries `path` loads (ldd without the umockdev preload)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    p = subprocess.run(["ldd", path], stdout=subprocess.PIPE, text=True, env=env)
    libs = set()
    for line in p.stdout.splitlines():
        parts = line.split()
        path = parts[2] if len(parts) >= 3 and parts[1] == "=>" else parts[0]
        if path.startswith("/"):
            libs.add(os.path.realpath(path))
    return libs


def rss_breakdown(pid):
    """RSS (KiB) split into anonymous memory, flashd's own binary and
    libraries, and mappings only the emulation brings in (the umockdev
    preload and the GLib stack it pulls in)."""
    own = ldd(harness.flashd_binary()) | {os.path.realpath(harness.flashd_binary())}
    # what only the emulation maps: the preload and its libraries (GLib);
    # anything else (NSS modules flashd's getpwuid_r loads) is flashd's
    emulation = set()
    for pre in os.environ.get("LD_PRELOAD", "").split():
        for cand in (pre, *[os.path.join(d, pre) for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib")]):
            if os.path.exists(cand):
                emulation |= ldd(cand) | {os.path.realpath(cand)}
                break
    emulation -= own
    out = {"anon": 0, "flashd_files": 0, "emulation_files": 0, "other": 0}
    per_file = {}
    path = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                fields = line.split()
                path = fields[5] if len(fields) >= 6 else ""
            elif first == "Rss:":
                kb = int(line.split()[1])
                if path.startswith("/"):
                    real = os.path.realpath(path)
                    key = "emulation_files" if real in emulation else "flashd_files"
                    per_file[os.path.basename(real)] = per_file.get(os.path.basename(real), 0) + kb
                elif path in ("", "[heap]", "[stack]") or path.startswith("[anon"):
                    key = "anon"
                else:
                    key = "other"  # [vdso], [vvar]
                out[key] += kb
    out["top_files"] = dict(sorted(per_file.items(), key=lambda kv: -kv[1])[:24])
    # Pss shares each page among the processes that map it; Private_* is
    # what exiting would free (USS)
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous"):
                out["rollup_" + k.lower()] = int(v.split()[0])
    out["uss"] = out.get("rollup_private_clean", 0) + out.get("rollup_private_dirty", 0)
    out["without_emulation"] = out["anon"] + out["flashd_files"] + out["other"]
    return out


def latency_run(path, clients, per_client):
    """`clients` connections, each sending device.list again as soon as the
    previous answer arrived; one selector loop, so no client waits for a
    Python thread. Returns the latencies in seconds."""
    sel = selectors.DefaultSelector()
    req = json.dumps({"jsonrpc": "2.0", "method": "device.list", "id": 1}).encode() + ETX
    conns = []
    for _ in range(clients):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.setblocking(False)
        st = {"sock": s, "buf": b"", "left": per_client, "t": 0.0}
        conns.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    lat = []
    for st in conns:
        st["t"] = time.perf_counter()
        st["sock"].sendall(req)
    active = len(conns)
    deadline = now() + 120
    while active:
        if now() > deadline:
            raise TimeoutError("latency run did not finish")
        for key, _ in sel.select(1.0):
            st = key.data
            chunk = st["sock"].recv(1 << 20)
            if not chunk:
                raise ConnectionError("flashd closed a client")
            st["buf"] += chunk
            while ETX in st["buf"]:
                frame, _, st["buf"] = st["buf"].partition(ETX)
                msg = json.loads(frame)
                if "id" not in msg:
                    continue  # a notification
                if "error" in msg:
                    raise RuntimeError(f"device.list: {msg['error']}")
                lat.append(time.perf_counter() - st["t"])
                st["left"] -= 1
                if st["left"] > 0:
                    st["t"] = time.perf_counter()
                    st["sock"].sendall(req)
                else:
                    active -= 1
    for st in conns:
        sel.unregister(st["sock"])
        st["sock"].close()
    return lat


def cpu_seconds(pid, tid=None):
    """utime + stime of a process (or one thread), in seconds."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_with_children(pid):
    """utime + stime of a process and of its children it reaped (the DFU
    probe helpers flashd spawns), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid):
    """{thread name: cpu seconds} over the threads of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            out[f"{name}/{tid}"] = cpu_seconds(pid, tid)
        except OSError:
            pass
    return out


def sched(pid):
    """{tid: [comm, cpu ns, run-queue wait ns]} from /proc/PID/task/*/schedstat:
    the wait is time the thread was runnable but had no CPU."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns, _ = f.read().split()
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            out[tid] = [comm, int(run_ns), int(wait_ns)]
        except (OSError, ValueError):
            pass
    return out


def sched_delta(first, last, wall, main_tid):
    """CPU and run-queue wait per second of wall time: the main thread
    apart, the other threads (job workers, probes) summed."""
    out = {"main_cpu": 0.0, "main_wait": 0.0, "workers_cpu": 0.0, "workers_wait": 0.0}
    for tid, (_, run_ns, wait_ns) in last.items():
        r0, w0 = (first[tid][1], first[tid][2]) if tid in first else (0, 0)
        key = "main" if tid == str(main_tid) else "workers"
        out[key + "_cpu"] += (run_ns - r0) / 1e9 / wall
        out[key + "_wait"] += (wait_ns - w0) / 1e9 / wall
    return {k: round(v, 3) for k, v in out.items()}


def fsync_trace_start(pid, out_path):
    """perf trace (tracepoints: the daemon is not stopped per system call,
    unlike strace) of the fsync family in every thread of `pid`; None
    without perf. perf sometimes gives up at start ("Problems initializing
    symbol libraries"): then it is started again."""
    # the emulation's preload would show perf its own /sys
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    for _ in range(5):
        try:
            p = subprocess.Popen(["perf", "trace", "-s", "-p", str(pid), "-o", out_path,
                                  "-e", "fsync,fdatasync,sync_file_range"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        except OSError:
            return None
        time.sleep(0.5)  # attached before the first job is submitted
        if p.poll() is None:
            return p
    return None


def fsync_trace_stop(p, out_path, pid):
    """{"main": {calls, total_ms, max_ms}, "other": {...}}: the main loop
    thread (tid == pid) apart from the workers."""
    if p is None:
        return None
    import signal
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    out = {"main": {"calls": 0, "total_ms": 0.0, "max_ms": 0.0},
           "other": {"calls": 0, "total_ms": 0.0, "max_ms": 0.0}}
    tid = None
    try:
        text = open(out_path).read()
    except OSError:
        return None
    import re
    for line in text.splitlines():
        f = line.split()
        m = re.match(r"^\s*.* \((\d+)\), \d+ events", line)
        if m:
            tid = int(m.group(1))
        elif len(f) >= 7 and f[0] in ("fsync", "fdatasync", "sync_file_range") and tid is not None:
            o = out["main" if tid == pid else "other"]
            o["calls"] += int(f[1])
            o["total_ms"] += float(f[3])
            o["max_ms"] = max(o["max_ms"], float(f[6]))
    return out


def latency_measure(pid, path, clients, requests, interval_ms=0):
    """Latencies (s) of `clients` closed-loop clients; with the C client
    (tests/bench/rpc-load.c, FLASHD_BENCH_RPC_LOAD) only its summary."""
    cpu0 = cpu_seconds(pid)
    s0 = sched(pid)
    t0 = now()
    tool = os.environ.get("FLASHD_BENCH_RPC_LOAD")
    extra = {}
    if tool:
        p = subprocess.run([tool, path, str(clients), str(requests), "device.list", str(interval_ms)],
                   stdout=subprocess.PIPE, text=True, timeout=180)
        if p.returncode != 0:
            raise RuntimeError(f"rpc-load exit {p.returncode}")
        summary = json.loads(p.stdout)
        lat = None
        n = summary["n"]
        extra = {"p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "max_ms": summary["max_ms"],
             "client": "c"}
    else:
        if interval_ms:
            raise RuntimeError("open-loop latency needs the C client (FLASHD_BENCH_RPC_LOAD)")
        lat = latency_run(path, clients, requests)
        n = len(lat)
        extra = {"p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3, "max_ms": max(lat) * 1e3,
             "client": "python"}
    wall = now() - t0
    cpu = cpu_seconds(pid) - cpu0
    extra.update({"n": n, "daemon_cpu_ms_per_request": cpu * 1e3 / n, "requests_per_second": n / wall,
              "sched": sched_delta(s0, sched(pid), wall, pid)})
    return lat, extra


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def measure_daemon(spec):
    vb = VBoard()
    boards = vb.list()
    out = {}
    # idle with only the application-mode boards present
    dfu_boards = [b for b in boards if b["mode"] == "dfu"][:spec["jobs"]]
    # one at a time: umockdev aborts when a uevent cannot be queued
    for b in dfu_boards:
        vb.unplug(b["index"])
        vb.wait(b["index"], "off", 10000)
    # start to READY=1: from the exec to the sd_notify datagram
    if spec.get("state_tmpfs"):
        # the same daemon with its state directory on tmpfs, where
        # fsync() costs nothing: shows what the job state saves cost
        import tempfile
        tempfile.tempdir = "/dev/shm"
    config = flashd_config()
    if spec.get("groups_known"):
        # An installed flashd finds its groups in /etc/group (sysusers.d
        # creates flashd); a group no file knows makes glibc ask the next
        # NSS module (libnss_systemd, which brings libm): 0.6 MiB of RSS
        # that only this machine's missing group costs. Name one /etc/group
        # has, so the idle figure is the installed one.
        import grp
        g = grp.getgrgid(os.getgid()).gr_name
        config += f"flash_group = {g}\nsocket_group = {g}\n"
    out["groups_known"] = bool(spec.get("groups_known"))
    d = harness.Flashd(config=config, log_level="info", wait_ready=False)
    t0 = now()
    d.start()
    d.wait_notify("READY=1", 20)
    out["ready_seconds"] = now() - t0
    try:
        pid = d.proc.pid
        c = d.client()
        n_idle = spec["idle_boards"]
        ports = [b["port"] for b in boards[:n_idle]]
        harness.wait_for(lambda: all(p in harness.devices_by_port(c) for p in ports), timeout=20,
                 interval=0.02, what="boards listed")
        c.close()
        d.clients.remove(c)
        time.sleep(spec.get("settle", 1.0))
        # idle means the start-up work is over too: the identify and probe
        # threads for the boards just found (on a loaded machine they can
        # outlast the settle time; their stacks would count as idle RSS)
        t_settle = now()
        while int(proc_status(pid)["Threads"]) > 1 and now() - t_settle < 20:
            time.sleep(0.1)
        out["idle_settle_extra_seconds"] = round(now() - t_settle, 2)
        st = proc_status(pid)
        out["rss_idle_kib"] = kib(st["VmRSS"])
        out["rss_idle_breakdown"] = rss_breakdown(pid)
        out["threads_idle"] = int(st["Threads"])
        if spec["idle_seconds"] > 0:
            cs0 = ctx_switches(pid)
            time.sleep(spec["idle_seconds"])
            out["idle_wakeups"] = ctx_switches(pid) - cs0
            out["idle_seconds"] = spec["idle_seconds"]

        _, out["latency_one_client"] = latency_measure(pid, d.socket_path, 1, 500)
        _, out["latency_idle"] = latency_measure(pid, d.socket_path, spec["clients"], spec["requests"])
        if spec.get("open_interval_ms"):
            _, out["latency_idle_open"] = latency_measure(pid, d.socket_path, spec["clients"],
                                      spec["requests"], spec["open_interval_ms"])

        # 8 parallel jobs on the boards in DFU mode (empty application
        # region, so plugging them in starts the ROM bootloader)
        for b in dfu_boards:
            vb.plug(b["index"])
            vb.wait(b["index"], "dfu", 30000)
        c = d.client()
        dfu_ports = [b["port"] for b in dfu_boards]
        harness.wait_for(lambda: all(harness.devices_by_port(c).get(p, {}).get("mode") == "dfu"
                         for p in dfu_ports), timeout=20, interval=0.02, what="dfu boards")
        trace_path = os.path.join(d.tmp, "fsync-trace.txt")
        tracer = fsync_trace_start(pid, trace_path)
        ids = []
        for p in dfu_ports:
            r = c.call("job.flash", {"target": p, "image": {"path": spec["image"]}, "address": spec["address"]})
            ids.append(r["job"]["id"])
        t_jobs = now()

        def running():
            return any(c.call("job.get", {"job": i})["job"]["state"] not in ("done", "failed", "cancelled")
                   for i in ids)
        harness.wait_for(lambda: all(c.call("job.get", {"job": i})["job"]["state"] == "flashing"
                         for i in ids), timeout=30, interval=0.02, what="jobs flashing")
        rounds = 0
        busy = []
        tc0 = thread_cpu(pid)
        t_busy = now()
        if spec.get("open_interval_ms"):
            _, out["latency_busy_open"] = latency_measure(pid, d.socket_path, spec["clients"],
                                      spec["requests"], spec["open_interval_ms"])
            out["latency_busy_open"]["jobs_still_running"] = running()
        while running() and rounds < spec.get("busy_rounds", 5):
            _, extra = latency_measure(pid, d.socket_path, spec["clients"], spec["requests"])
            busy.append(extra)
            rounds += 1
        busy_wall = now() - t_busy
        tc1 = thread_cpu(pid)
        # CPU share of each thread while the jobs and the clients ran
        out["threads_cpu_busy"] = {k: round((tc1[k] - tc0.get(k, 0)) / busy_wall, 3)
                       for k in tc1 if tc1[k] - tc0.get(k, 0) > 0}
        harness.wait_for(lambda: not running(), timeout=300, interval=0.1, what="jobs done")
        out["jobs_seconds"] = now() - t_jobs
        # fsync() of jobs.json and the image store during the 8 jobs, per job
        fs = fsync_trace_stop(tracer, trace_path, pid)
        if fs:
            n = len(ids)
            out["fsync_per_job"] = {k: {"calls": v["calls"] / n, "ms": v["total_ms"] / n, "max_ms": v["max_ms"]}
                                    for k, v in fs.items()}
        states = [c.call("job.get", {"job": i})["job"]["state"] for i in ids]
        out["jobs_states"] = states
        st = proc_status(pid)
        out["rss_peak_kib"] = kib(st["VmHWM"])
        out["rss_after_jobs_kib"] = kib(st["VmRSS"])
        # each round's percentiles; the table shows the worst round's
        out["latency_busy_rounds"] = busy
        out["latency_busy"] = {
            "p50_ms": statistics.median(b["p50_ms"] for b in busy),
            "p99_ms": max(b["p99_ms"] for b in busy),
            "n": sum(b["n"] for b in busy), "rounds": rounds,
            "daemon_cpu_ms_per_request": statistics.median(b["daemon_cpu_ms_per_request"] for b in busy),
        } if busy else None
        image = open(spec["image"], "rb").read()
        bad = []
        for b in boards:
            if b["port"] in dfu_ports:
                vb.wait(b["index"], "app", 30000)
                if read_flash(vb, b["index"], spec["address"], len(image)) != image:
                    bad.append(b["port"])
        out["jobs_flash_ok"] = not bad and all(s == "done" for s in states)
        c.close()
        d.clients.remove(c)
    finally:
        d.stop(check=False)
        d.cleanup()
    return out


def main():
    spec = json.load(open(sys.argv[1]))
    try:
        if spec["tool"] == "daemon":
            out = measure_daemon(spec)
        else:
            out = measure_tool(spec)
        out["ok"] = True
    except Exception as e:  # reported, never timed
        import traceback
        traceback.print_exc()
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
