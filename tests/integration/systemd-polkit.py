#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""systemd/polkit/50-flashd.rules allows exactly what it should.

The rule is JavaScript run by polkitd; here node.js runs it with a stand-in
`polkit` object and a table of (action, unit, verb, user) -> expected
result. Skipped when node is not installed.
"""

import json
import os
import shutil
import subprocess
import sys

SRC = os.environ.get("FLASHD_SOURCE_ROOT") or sys.exit("FLASHD_SOURCE_ROOT not set (run through meson test)")
RULES = os.path.join(SRC, "systemd", "polkit", "50-flashd.rules")
MANAGE = "org.freedesktop.systemd1.manage-units"

CASES = [
    (MANAGE, "klipper.service", "stop", "flashd", "yes"),
    (MANAGE, "klipper.service", "start", "flashd", "yes"),
    (MANAGE, "klipper.service", "restart", "flashd", "yes"),
    (MANAGE, "klipper.service", "reload", "flashd", "not_handled"),
    (MANAGE, "sshd.service", "stop", "flashd", "not_handled"),
    (MANAGE, "klipper.service", "stop", "alice", "not_handled"),
    (MANAGE, "klipper.service.d", "stop", "flashd", "not_handled"),
    ("org.freedesktop.systemd1.manage-unit-files", "klipper.service", "stop", "flashd", "not_handled"),
    ("org.freedesktop.login1.reboot", None, None, "flashd", "not_handled"),
]

DRIVER = r"""
const fs = require("fs");
const rules = [];
const polkit = { Result: { YES: "yes", NO: "no", NOT_HANDLED: "not_handled" },
                 addRule: (f) => rules.push(f), log: () => {} };
new Function("polkit", fs.readFileSync(process.argv[1], "utf8"))(polkit);
const out = JSON.parse(fs.readFileSync(0, "utf8")).map(([id, unit, verb, user]) => {
    const action = { id: id, lookup: (k) => ({ unit: unit, verb: verb })[k] };
    const subject = { user: user };
    for (const r of rules) {
        const res = r(action, subject);
        if (res !== undefined && res !== polkit.Result.NOT_HANDLED) return res;
    }
    return "not_handled";
});
console.log(JSON.stringify({ rules: rules.length, results: out }));
"""


def main():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        print("SKIP: node.js not installed; the polkit rule is not evaluated")
        sys.exit(77)
    r = subprocess.run([node, "-e", DRIVER, RULES], input=json.dumps([c[:4] for c in CASES]),
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        print("FAIL: node could not run the rule:", r.stderr)
        sys.exit(1)
    got = json.loads(r.stdout)
    failed = 0
    if got["rules"] != 1:
        print(f"FAIL: expected one rule, got {got['rules']}")
        failed += 1
    for case, res in zip(CASES, got["results"]):
        ok = res == case[4]
        failed += not ok
        print(("ok: " if ok else "FAIL: ") + f"{case[3]} {case[0]} {case[2]} {case[1]} -> {res}")
    sys.exit(1 if failed else 0)


main()
