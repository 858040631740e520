#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""proto/API.md documents exactly the methods the daemon registers: the
`### name.verb` headings against `flashd --list-methods` and the live
`server.methods` call."""
import os
import re
import subprocess

import harness


def documented():
    with open(os.path.join(harness.source_root(), "proto", "API.md")) as f:
        text = f.read()
    methods = set(re.findall(r"^### ([a-z_]+(?:\.[a-z_]+)+)\s*$", text, re.M))
    notifications = set(re.findall(r"^### (notify_[a-z_]+)\s*$", text, re.M))
    return methods, notifications


def test_list_methods_flag_matches_doc():
    methods, _ = documented()
    assert methods, "no methods found in API.md"
    out = subprocess.run([harness.flashd_binary(), "--list-methods"], capture_output=True, text=True,
                         check=True, timeout=10).stdout.split()
    registered = set(out)
    assert len(out) == len(registered), "duplicate method names"
    missing_doc = registered - methods
    missing_impl = methods - registered
    assert not missing_doc and not missing_impl, \
        f"registered but undocumented: {sorted(missing_doc)}; documented but missing: {sorted(missing_impl)}"


def test_server_methods_matches_doc():
    methods, notifications = documented()
    with harness.Flashd() as d:
        c = d.client()
        assert set(c.call("server.methods")) == methods
    # every notification the core emits is documented
    for n in ("notify_device_added", "notify_device_changed", "notify_device_removed"):
        assert n in notifications, n


def test_error_codes_documented():
    """Every code of proto/rpc-error.c appears in API.md's table with its name."""
    with open(os.path.join(harness.source_root(), "proto", "rpc-error.c")) as f:
        codes = re.findall(r"\{ (-\d+), \"([a-z_]+)\"", f.read())
    with open(os.path.join(harness.source_root(), "proto", "API.md")) as f:
        doc = f.read()
    assert len(codes) >= 17
    for code, name in codes:
        assert re.search(rf"^\| {code} \| {name} \|", doc, re.M), f"{code} {name} not in API.md"


if __name__ == "__main__":
    harness.main([test_list_methods_flag_matches_doc, test_server_methods_matches_doc,
                  test_error_codes_documented])
