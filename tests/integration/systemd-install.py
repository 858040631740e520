#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`meson install --destdir D` yields units that systemd accepts.

- every file of systemd/ lands where systemd, udev and polkit look for it
  (relative to the configured prefix), with sbindir substituted;
- `systemd-analyze verify --root=D` passes on the installed flashd.service
  and flashd.socket, with the flashd binary at its ExecStart path inside D
  and the man pages of Documentation= found through MANPATH=D/...;
  D gets a copy of the host's own unit directory so that the units' implicit
  dependencies (sysinit.target, sockets.target, ...) resolve as on a real
  system;
- `systemd-analyze security --offline=true` rates the installed service at
  2.0 ("OK") or better;
- systemd-sysusers accepts the sysusers.d file and creates user and group
  flashd in D's /etc.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("FLASHD_BUILD_ROOT") or sys.exit("FLASHD_BUILD_ROOT not set (run through meson test)")
HOST_UNITS = "/lib/systemd/system"
MAX_EXPOSURE = 2.0

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def installed_paths():
    with open(os.path.join(BUILD, "meson-info", "intro-installed.json")) as f:
        return json.load(f)


def main():
    for tool in ("systemd-analyze", "systemd-sysusers"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not found (Debian package systemd)")
            sys.exit(77)

    dest = tempfile.mkdtemp(prefix="flashd-systemd-install-")
    try:
        r = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", dest])
        check(r.returncode == 0, "meson install --destdir succeeds: " + r.stderr.strip()[-500:])
        if r.returncode != 0:
            return

        plan = installed_paths()
        by_name = {}
        for key, suffix in (("flashd.service", "/flashd.service"), ("flashd.socket", "/flashd.socket"),
                            ("flashd.conf", "/sysusers.d/flashd.conf"), ("70-flashd.rules", "/70-flashd.rules"),
                            ("50-flashd.rules", "/50-flashd.rules"), ("flashd", "/sbin/flashd")):
            hits = [dst for dst in plan.values() if dst.endswith(suffix)]
            check(len(hits) == 1 and os.path.exists(dest + hits[0]), f"{key} installed ({hits})")
            if len(hits) != 1:
                return
            by_name[key] = hits[0]
        unitdir = os.path.dirname(by_name["flashd.service"])
        check(unitdir.endswith("/lib/systemd/system"), f"units in a systemd unit directory ({unitdir})")
        check(by_name["70-flashd.rules"].endswith("/lib/udev/rules.d/70-flashd.rules"), "udev rules in udev's rules.d")
        check(by_name["flashd.conf"].endswith("/lib/sysusers.d/flashd.conf"), "sysusers file in sysusers.d")
        check(by_name["50-flashd.rules"].endswith("/share/polkit-1/rules.d/50-flashd.rules"), "polkit rule in rules.d")

        service = open(dest + by_name["flashd.service"]).read()
        exec_start = re.search(r"^ExecStart=(\S+)", service, re.M).group(1)
        check(exec_start == by_name["flashd"], f"ExecStart={exec_start} is the installed binary")
        check("@" not in exec_start, "ExecStart has no unsubstituted @VAR@")
        check(os.access(dest + exec_start, os.X_OK), "the binary at ExecStart is executable inside D")

        # The host's units (targets, slices) so that default dependencies resolve.
        host_copy = os.path.join(dest, HOST_UNITS.lstrip("/"))
        if os.path.realpath(host_copy) != os.path.realpath(dest + unitdir):
            shutil.copytree(HOST_UNITS, host_copy, symlinks=True, dirs_exist_ok=True)
        env = dict(os.environ)
        mandirs = [os.path.dirname(os.path.dirname(p)) for p in plan.values() if re.search(r"/man\d/", p)]
        env["MANPATH"] = ":".join(sorted({dest + d for d in mandirs})) + ":"
        man_check = "--man=yes" if mandirs and shutil.which("man") else "--man=no"
        if man_check == "--man=no":
            print("note: man pages not built or man(1) missing: Documentation= not checked")
        r = run(["systemd-analyze", "verify", man_check, f"--root={dest}",
                 by_name["flashd.service"], by_name["flashd.socket"]], env=env)
        out = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and out == "", f"systemd-analyze verify --root=D passes: {out!r}")

        # A unit that is really wrong must fail the same check (the check can fail).
        broken = os.path.join(dest + unitdir, "flashd-broken.service")
        with open(broken, "w") as f:
            f.write(service.replace(f"ExecStart={exec_start}", "ExecStart=/nonexistent/flashd"))
        r = run(["systemd-analyze", "verify", "--man=no", f"--root={dest}", unitdir + "/flashd-broken.service"])
        check(r.returncode != 0, "verify rejects a unit whose ExecStart does not exist")
        os.unlink(broken)

        r = run(["systemd-analyze", "security", "--offline=true", f"--root={dest}",
                 f"--threshold={int(MAX_EXPOSURE * 10)}", "flashd.service"])
        m = re.search(r"Overall exposure level for flashd.service: ([0-9.]+)", r.stdout)
        level = float(m.group(1)) if m else 99.0
        check(r.returncode == 0 and level <= MAX_EXPOSURE,
              f"exposure level {level} <= {MAX_EXPOSURE} (systemd-analyze security --offline=true)")

        os.makedirs(os.path.join(dest, "etc"), exist_ok=True)
        for f in ("passwd", "group", "shadow", "gshadow"):
            open(os.path.join(dest, "etc", f), "a").close()
        r = run(["systemd-sysusers", f"--root={dest}", dest + by_name["flashd.conf"]])
        check(r.returncode == 0, "systemd-sysusers accepts sysusers.d/flashd.conf: " + r.stderr.strip())
        passwd = open(os.path.join(dest, "etc", "passwd")).read()
        group = open(os.path.join(dest, "etc", "group")).read()
        m = re.search(r"^flashd:x:(\d+):(\d+):[^:]*:/var/lib/flashd:", passwd, re.M)
        check(m is not None, "user flashd created with home /var/lib/flashd")
        g = re.search(r"^flashd:x:(\d+):", group, re.M)
        check(g is not None and m is not None and g.group(1) == m.group(2), "group flashd is the user's group")
        check(m is not None and int(m.group(1)) < 1000, "flashd is a system user")
    finally:
        shutil.rmtree(dest, ignore_errors=True)


main()
if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
