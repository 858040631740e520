#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The tests that run code as other users pass from a checkout in a 0700
directory (a clone in /root, Debian's default mode for it).

perm-users.py runs from a copy of tests/integration, with the flashd binary
and the board data, all inside a 0700 directory: the test users and the
unprivileged flashd cannot read any of it, so they must get what they need
from world-readable copies (harness.for_other_users()). Needs root, like
perm-users.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import harness

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    if os.geteuid() != 0:
        print("SKIP: perm-users needs root")
        sys.exit(77)
    home = tempfile.mkdtemp(prefix="flashd-home-")  # 0700, as /root
    try:
        os.chmod(home, 0o700)
        tests = os.path.join(home, "checkout", "tests", "integration")
        shutil.copytree(HERE, tests, ignore=shutil.ignore_patterns("__pycache__"))
        boards = shutil.copytree(harness.boards_dir(), os.path.join(home, "checkout", "boards"))
        flashd = os.path.join(home, "checkout", "flashd")
        shutil.copy2(harness.flashd_binary(), flashd)
        # proof that the setting is what it claims: nobody cannot get in
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                            "/bin/ls", boards], capture_output=True, text=True)
        assert r.returncode != 0, "the 0700 directory is readable by nobody"
        env = dict(os.environ, FLASHD_BIN=flashd, FLASHD_BOARDS_DIR=boards,
                   FLASHD_SOURCE_ROOT=os.path.join(home, "checkout"))
        # the sanitizers' suppressions (ASan build) from inside it too
        opts = env.get("LSAN_OPTIONS", "")
        for o in opts.split(":"):
            if o.startswith("suppressions="):
                supp = shutil.copy(o.split("=", 1)[1], os.path.join(home, "checkout", "lsan.supp"))
                env["LSAN_OPTIONS"] = opts.replace(o, "suppressions=" + supp)
        timeout = 120 * float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
        r = subprocess.run([sys.executable, os.path.join(tests, "perm-users.py")], env=env, cwd=home,
                           capture_output=True, text=True, timeout=timeout)
        print(r.stdout + r.stderr)
        if r.returncode != 0:
            print(f"FAIL: perm-users from a checkout in a 0700 directory: exit {r.returncode}")
            sys.exit(1)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
