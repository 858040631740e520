# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared harness for flashd integration tests (stdlib only).

    import harness
    with harness.Flashd() as d:                 # temp socket + state dir, waits for READY=1
        c = d.client()                          # identified RpcClient (gets notifications)
        info = c.call("server.info")
        try:
            c.call("device.info", {"device": "nope"})
        except harness.RpcError as e:
            assert e.code == -32004
        n = c.wait_notification("notify_device_added", lambda p: p[0]["port"] == "1-1.3")
    # leaving the block sends SIGTERM and checks a clean exit (status 0)

Flashd(...) takes extra args, a config text (written to a temp file and
passed with --config), boards dirs, environment overrides. The daemon's
stderr goes to a log file printed by `d.dump_log()` and on failures.
Under `vboard ... -- python3 test.py` flashd inherits the umockdev
environment (LD_PRELOAD, UMOCKDEV_DIR) from the test process.

Code that runs as another user (Flashd(other_user=True), a client started
with setpriv) may not read the checkout: it can sit in a 0700 home
directory. `for_other_users()` gives world-readable copies of what such code
needs (the flashd binary, board data, this module) in a temp directory.

`harness.main(test_functions)` runs tests, prints results and exits 1 on
any failure, 77 (skip) if a test raises harness.Skip.
"""

import atexit
import errno
import json
import os
import select
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ETX = b"\x03"
# Slow checkers (the valgrind test setups) scale every wait.
DEFAULT_TIMEOUT = 10.0 * float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


class Skip(Exception):
    """Raise to skip a test (exit status 77 when all are skipped)."""


class RpcError(Exception):
    def __init__(self, error):
        self.error = error
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data") or {}
        self.name = self.data.get("name")
        super().__init__(f"{self.code} {self.name}: {self.message}")


def source_root():
    return os.environ.get("FLASHD_SOURCE_ROOT") or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_root():
    root = os.environ.get("FLASHD_BUILD_ROOT")
    if root:
        return root
    for name in ("build", "build-core"):
        cand = os.path.join(source_root(), name)
        if os.path.exists(os.path.join(cand, "daemon", "flashd")):
            return cand
    raise RuntimeError("set FLASHD_BUILD_ROOT to the meson build directory")


def flashd_binary():
    return os.environ.get("FLASHD_BIN") or os.path.join(build_root(), "daemon", "flashd")


def flashctl_binary():
    return os.environ.get("FLASHCTL_BIN") or os.path.join(build_root(), "client", "flashctl")


def boards_dir():
    return os.environ.get("FLASHD_BOARDS_DIR") or os.path.join(source_root(), "daemon", "boards", "data")


class _SharedCopies:
    """World-readable copies, made once per test process, removed at exit.
    Never chmod the checkout or the home directory it may sit in."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="flashd-shared-")
        os.chmod(self.dir, 0o755)
        atexit.register(shutil.rmtree, self.dir, True)
        self.copies = {}

    def _target(self, src, name):
        key = os.path.realpath(src)
        if key not in self.copies:
            self.copies[key] = os.path.join(self.dir, f"{len(self.copies)}-{name}")
        return self.copies[key], key

    def file(self, src, mode=0o644):
        dst, _ = self._target(src, os.path.basename(src))
        if not os.path.exists(dst):
            shutil.copyfile(src, dst)
            os.chmod(dst, mode)
        return dst

    def tree(self, src):
        dst, key = self._target(src, os.path.basename(src.rstrip("/")) or "dir")
        if not os.path.exists(dst):
            shutil.copytree(key, dst)
            for root, dirs, files in os.walk(dst):
                os.chmod(root, 0o755)
                for n in files:
                    os.chmod(os.path.join(root, n), 0o644)
        return dst

    def flashd(self):
        return self.file(flashd_binary(), 0o755)

    def sanitizer_env(self, env):
        """LSAN_OPTIONS names a suppressions file in the checkout: the
        sanitizer of a daemon run as another user must read a copy (it dies
        at exit when it cannot read the file)."""
        opts = env.get("LSAN_OPTIONS")
        if opts:
            env["LSAN_OPTIONS"] = ":".join(
                "suppressions=" + self.file(o.split("=", 1)[1]) if o.startswith("suppressions=") else o
                for o in opts.split(":"))
        return env

    def python_path(self):
        """A directory holding harness.py, for sys.path of another user's python."""
        d = os.path.join(self.dir, "python")
        if not os.path.isdir(d):
            os.mkdir(d, 0o755)
            dst = os.path.join(d, "harness.py")
            shutil.copyfile(os.path.abspath(__file__), dst)
            os.chmod(dst, 0o644)
        return d


_shared = None


def for_other_users():
    global _shared
    if _shared is None:
        _shared = _SharedCopies()
    return _shared


def wait_for(predicate, timeout=DEFAULT_TIMEOUT, interval=0.02, what="condition"):
    """Poll predicate() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RpcClient:
    """A JSON-RPC 2.0 client on flashd's ETX-framed Unix socket."""

    def __init__(self, path, timeout=DEFAULT_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.notifications = []  # every notification seen, in order
        self.responses = {}      # id -> response that arrived out of order
        self.connection_id = None

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, message):
        self.send_raw(json.dumps(message).encode() + ETX)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no message from flashd in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("flashd closed the connection")
        self.buf += chunk

    def recv_message(self, timeout=None):
        """The next complete message (parsed JSON), whatever it is."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while ETX not in self.buf:
            self._fill(deadline)
        frame, _, self.buf = self.buf.partition(ETX)
        return json.loads(frame)

    def _dispatch(self, msg):
        if isinstance(msg, dict) and "id" not in msg and "method" in msg:
            self.notifications.append(msg)
            return None
        return msg

    def request(self, method, params=None, timeout=None, msg_id=None):
        """Send a request; return the whole response object."""
        if msg_id is None:
            msg_id = self.next_id
            self.next_id += 1
        req = {"jsonrpc": "2.0", "method": method, "id": msg_id}
        if params is not None:
            req["params"] = params
        self.send(req)
        return self.wait_response(msg_id, timeout)

    def wait_response(self, msg_id, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while msg_id not in self.responses:
            msg = self._dispatch(self.recv_message(max(0.001, deadline - time.monotonic())))
            if msg is None:
                continue
            if isinstance(msg, dict) and "id" in msg:
                self.responses[msg["id"]] = msg
            else:
                raise AssertionError(f"unexpected message {msg!r}")
        return self.responses.pop(msg_id)

    def call(self, method, params=None, timeout=None):
        """Call a method; return its result or raise RpcError."""
        resp = self.request(method, params, timeout)
        if "error" in resp:
            raise RpcError(resp["error"])
        return resp["result"]

    def identify(self, name="flashd-test", version="0", type_="other"):
        r = self.call("server.connection.identify",
                      {"client_name": name, "version": version, "type": type_})
        self.connection_id = r["connection_id"]
        return r

    def wait_notification(self, method, predicate=None, timeout=None, consume=True):
        """Wait for a notification `method` whose params satisfy predicate.
        Already received notifications count; the match is removed from
        self.notifications when consume is true."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            for i, n in enumerate(self.notifications):
                if n.get("method") == method and (predicate is None or predicate(n.get("params"))):
                    if consume:
                        del self.notifications[i]
                    return n["params"]
            msg = self._dispatch(self.recv_message(max(0.001, deadline - time.monotonic())))
            if msg is not None and isinstance(msg, dict) and "id" in msg:
                self.responses[msg["id"]] = msg

    def drain(self, quiet=0.2):
        """Read whatever arrives until `quiet` seconds pass without a message."""
        while True:
            try:
                msg = self._dispatch(self.recv_message(quiet))
            except TimeoutError:
                return
            except socket.timeout:
                return
            if msg is not None and "id" in msg:
                self.responses[msg["id"]] = msg

    def is_closed_by_peer(self, timeout=2.0):
        """True when the daemon closed this connection (EOF or reset)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], max(0, deadline - time.monotonic()))
            if not r:
                continue
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
        return False


class Flashd:
    """One flashd process with its own temp socket, state dir and log."""

    def __init__(self, args=(), config=None, boards_dirs=None, env=None, log_level="debug",
                 socket_path=None, wait_ready=True, timeout=DEFAULT_TIMEOUT, other_user=False):
        self.tmp = tempfile.mkdtemp(prefix="flashd-test-")
        self.socket_path = socket_path or os.path.join(self.tmp, "flashd.sock")
        self.state_dir = os.path.join(self.tmp, "state")
        self.log_path = os.path.join(self.tmp, "flashd.log")
        self.args = list(args)
        self.config = config
        self.boards_dirs = boards_dirs if boards_dirs is not None else [boards_dir()]
        self.env = env or {}
        self.log_level = log_level
        self.wait_ready = wait_ready
        self.timeout = timeout
        self.proc = None
        self.notify_sock = None
        self.notify_messages = []
        self.clients = []
        # runs as another user (a FLASHD_WRAPPER or command() that drops
        # privileges): binary and board data from world-readable copies
        self.other_user = other_user

    # lifecycle -----------------------------------------------------------
    def command(self):
        # FLASHD_WRAPPER (e.g. "valgrind --error-exitcode=99 -q") runs the
        # daemon under a checker: the `valgrind` test setup sets it.
        cmd = shlex.split(os.environ.get("FLASHD_WRAPPER", ""))
        shared = for_other_users() if self.other_user else None
        cmd += [shared.flashd() if shared else flashd_binary(), "--socket", self.socket_path,
                "--state-dir", self.state_dir, "--log-level", self.log_level]
        for d in self.boards_dirs:
            cmd += ["--boards-dir", shared.tree(d) if shared else d]
        if self.config is not None:
            path = os.path.join(self.tmp, "flashd.conf")
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["--config", path]
        return cmd + self.args

    def start(self):
        notify_path = os.path.join(self.tmp, "notify")
        self.notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_sock.bind(notify_path)
        self.notify_cond = threading.Condition()
        self.notify_stop = False
        self.notify_thread = threading.Thread(target=self._notify_reader, daemon=True)
        self.notify_thread.start()
        env = dict(os.environ)
        # nothing of a surrounding systemd service leaks into the daemon
        for k in ("JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
                  "WATCHDOG_PID"):
            env.pop(k, None)
        env.update(self.env)
        if self.other_user:
            for_other_users().sanitizer_env(env)
        env["NOTIFY_SOCKET"] = notify_path
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        if self.wait_ready:
            self.wait_notify("READY=1", self.timeout)
        return self

    def _notify_reader(self):
        # Read every datagram at once: a full receive queue would block the
        # daemon's sd_notify() (systemd reads them the same way). Stops once
        # asked to and nothing more is queued.
        sock = self.notify_sock
        sock.settimeout(0.05)
        while True:
            try:
                data = sock.recv(4096)
            except socket.timeout:
                if self.notify_stop:
                    return
                continue
            except OSError:
                return
            with self.notify_cond:
                self.notify_messages.append(data.decode(errors="replace"))
                self.notify_cond.notify_all()

    def wait_notify(self, needle, timeout=DEFAULT_TIMEOUT):
        """Wait for an sd_notify datagram containing the line `needle`."""
        deadline = time.monotonic() + timeout
        with self.notify_cond:
            while True:
                for m in self.notify_messages:
                    if needle in m.split("\n"):
                        return m
                if self.proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    break
                self.notify_cond.wait(0.05)
        self.dump_log()
        if self.proc.poll() is not None:
            raise RuntimeError(f"flashd exited with {self.proc.returncode} before {needle}")
        raise TimeoutError(f"flashd did not send {needle} within {timeout}s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=DEFAULT_TIMEOUT, check=True):
        """Stop the daemon; return its exit status. With check, a non-zero
        status (ASan leak, crash) raises."""
        for c in self.clients:
            c.close()
        self.clients = []
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.dump_log()
                raise RuntimeError(f"flashd did not stop within {timeout}s of signal {sig}")
        rc = self.proc.returncode
        self.log.close()
        if self.notify_sock:
            self.notify_stop = True
            self.notify_thread.join(5)
            self.notify_sock.close()
            self.notify_sock = None
        if check and rc != 0:
            self.dump_log()
            raise RuntimeError(f"flashd exited with status {rc}")
        return rc

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                self.dump_log()
                self.stop(check=False)
            else:
                self.stop()
        finally:
            self.cleanup()

    # helpers ----------------------------------------------------------------
    def client(self, identify=True, timeout=DEFAULT_TIMEOUT):
        c = RpcClient(self.socket_path, timeout)
        if identify:
            c.identify()
        self.clients.append(c)
        return c

    def raw_socket(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.socket_path)
        return s

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def dump_log(self, tail=200):
        try:
            lines = self.log_text().splitlines()
        except OSError:
            return
        sys.stderr.write("---- flashd log (last %d lines) ----\n" % min(tail, len(lines)))
        for line in lines[-tail:]:
            sys.stderr.write(line + "\n")
        sys.stderr.write("---- end of flashd log ----\n")

    def flashctl(self, *args, check=False, timeout=DEFAULT_TIMEOUT):
        env = dict(os.environ)
        env["FLASHD_SOCKET"] = self.socket_path
        return subprocess.run([flashctl_binary(), "--socket", self.socket_path, *args], env=env,
                              capture_output=True, text=True, timeout=timeout, check=check)


def devices_by_port(client):
    return {d["port"]: d for d in client.call("device.list")}


def layout_summary(layout):
    """[(count, size), ...] over every region of a device's layout."""
    return [(s["count"], s["size"]) for region in (layout or []) for s in region["sectors"]]


F429_LAYOUT = [(4, 16 * 1024), (1, 64 * 1024), (7, 128 * 1024)]


def main(tests):
    """Run test functions; print one line each; exit 0, 1 (failure) or 77 (all skipped)."""
    failed = skipped = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
        except Skip as e:
            skipped += 1
            print(f"SKIP {t.__name__}: {e}")
            continue
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
            continue
        print(f"ok   {t.__name__} ({time.monotonic() - start:.2f}s)")
    sys.stdout.flush()
    if failed:
        sys.exit(1)
    if skipped and skipped == len(tests):
        sys.exit(77)
    sys.exit(0)
