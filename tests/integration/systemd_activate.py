# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashd started the way flashd.socket starts it: by socket activation.

SocketActivatedFlashd is a harness.Flashd whose process is
`systemd-socket-activate -l SOCKET --fdname=api flashd ...` (no --socket):
systemd-socket-activate binds the socket, waits for the first connection,
then execs flashd in the same process with LISTEN_FDS/LISTEN_FDNAMES, as
systemd does for flashd.socket. It passes on only the environment named
with -E, so the variables tests depend on are listed explicitly.

With wait_ready (the default) start() connects once to wake flashd and
waits for READY=1, so tests written for harness.Flashd run unchanged; the
activation test itself uses wait_ready=False to see the first connection
start the daemon.

`python3 systemd-activated.py TEST.py` runs any harness-based test file
with harness.Flashd replaced by this class, so the hostile-client tests are
registered a second time in meson and run against the socket-activated
daemon without changing them.
"""

import os
import shutil
import socket

import harness

PASS_ENV = ("LD_PRELOAD", "UMOCKDEV_DIR", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "NOTIFY_SOCKET",
            "WATCHDOG_USEC", "FLASHD_BOARDS_DIR", "LANG", "TZ")


def activator():
    path = shutil.which("systemd-socket-activate")
    if not path:
        raise harness.Skip("systemd-socket-activate not found (Debian package systemd)")
    return path


class SocketActivatedFlashd(harness.Flashd):
    def command(self):
        cmd = super().command()
        i = cmd.index("--socket")
        del cmd[i:i + 2]
        act = [activator(), "-l", self.socket_path, "--fdname=api"]
        env = dict(os.environ)
        env.update(self.env)
        for var in PASS_ENV:
            if var == "NOTIFY_SOCKET":
                act += ["-E", "NOTIFY_SOCKET=" + os.path.join(self.tmp, "notify")]
            elif var in env:
                act += ["-E", f"{var}={env[var]}"]
        return act + cmd

    def start(self):
        wait_ready = self.wait_ready
        self.wait_ready = False
        super().start()
        self.wait_ready = wait_ready
        harness.wait_for(lambda: os.path.exists(self.socket_path) or self.proc.poll() is not None,
                         self.timeout, what="systemd-socket-activate to bind " + self.socket_path)
        if self.proc.poll() is not None:
            self.dump_log()
            raise RuntimeError(f"systemd-socket-activate exited with {self.proc.returncode}")
        # The file exists from bind() on, but connecting is refused until listen().
        harness.wait_for(self._listening, self.timeout, what="systemd-socket-activate to listen")
        if wait_ready:
            # The first connection is what starts flashd.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(self.socket_path)
                self.wait_notify("READY=1", self.timeout)
            # Make sure what serves the test is the activated socket, not a fallback.
            if "socket-activated fd 3 (api)" not in self.log_text():
                self.dump_log()
                raise RuntimeError("flashd did not take the socket-activated fd")
        return self

    def _listening(self):
        """True once the socket accepts connections. Probing with connect()
        would itself start flashd, so look at the kernel's table instead."""
        try:
            with open("/proc/net/unix") as f:
                for line in f:
                    fields = line.split()
                    # Flags 00010000 = __SO_ACCEPTCON (listening); St 01 = unconnected.
                    if len(fields) >= 8 and fields[7] == self.socket_path and fields[3] == "00010000":
                        return True
        except OSError:
            return os.path.exists(self.socket_path)
        return False

    def exe(self):
        """What the process runs now: systemd-socket-activate, then flashd."""
        try:
            return os.path.realpath(f"/proc/{self.proc.pid}/exe")
        except OSError:
            return None


def is_flashd(exe):
    return exe is not None and os.path.realpath(exe) == os.path.realpath(harness.flashd_binary())


