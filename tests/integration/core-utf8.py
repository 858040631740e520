#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Strings from the world that are not UTF-8 must not make jobs or rules
vanish. Under

    vboard --board octopus-pro-f429 --mode dfu

a client whose process name (/proc/<pid>/comm, which any process sets with
prctl(PR_SET_NAME)) is not UTF-8 submits job.flash and rule.add: both are
answered with the object, listed by job.list / rule.list, and saved in the
state files.
"""
import base64
import ctypes
import json
import os

import harness
from jobs_helpers import APP, FAST_CONFIG, app_image, check, require_vboard, wait_job

PR_SET_NAME = 15
BAD_NAME = b"fl\xffsh\xc3(\xed\xa0\x80"


def submit_as_badly_named_process(socket_path, image):
    """Fork; the child names itself BAD_NAME and submits; results via a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_NAME, ctypes.c_char_p(BAD_NAME), 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl")
            with open(f"/proc/{os.getpid()}/comm", "rb") as f:
                assert f.read().rstrip(b"\n") == BAD_NAME
            out = {}
            with harness.RpcClient(socket_path, timeout=60) as c:
                out["job"] = c.request("job.flash", {"target": "octopus-pro", "image": {
                    "data": base64.b64encode(image).decode()}})
                out["rule"] = c.request("rule.add", {
                    "match": {"port": "9-9.9", "mode": "bootloader"},
                    "image": {"data": base64.b64encode(image).decode(), "name": "k.bin"}})
            os.write(w, json.dumps(out).encode())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, json.dumps({"exception": repr(e)}).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    out = json.loads(data)
    check("exception" not in out, "client process", out.get("exception"))
    return out


def test_non_utf8_process_name():
    require_vboard()
    image = app_image(16 * 1024, APP, seed=7, mcu="stm32f429xx")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        # identified (its layout read): slow under valgrind
        harness.wait_for(lambda: harness.devices_by_port(c).get("1-1.1", {}).get("probed"),
                         timeout=60 * float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1")), what="board")
        out = submit_as_badly_named_process(d.socket_path, image)
        job = out["job"].get("result")
        check(isinstance(job, dict) and "job" in job, "job.flash answered with the job", out["job"])
        job = job["job"]
        name = job["requested_by"]["name"]
        check(name.startswith("fl\ufffdsh") and "\ufffd" in name[5:], "name sanitized", name)
        rule = out["rule"].get("result")
        check(isinstance(rule, dict) and "rule" in rule, "rule.add answered with the rule", out["rule"])
        rule = rule["rule"]
        check(rule["created_by"]["name"] == name, "rule creator sanitized the same way", rule["created_by"])

        listed = [j for j in c.call("job.list", {"all": True})["jobs"] if j["id"] == job["id"]]
        check(len(listed) == 1, "job.list shows the job", listed)
        check(listed[0]["requested_by"]["name"] == name, "listed name", listed[0]["requested_by"])
        rules = [r for r in c.call("rule.list")["rules"] if r["id"] == rule["id"]]
        check(len(rules) == 1, "rule.list shows the rule", rules)
        wait_job(c, job["id"], timeout=60)
        # the state files hold them too
        with open(os.path.join(d.state_dir, "jobs.json")) as f:
            saved = json.load(f)
        check(any(j["id"] == job["id"] and j["requested_by"]["name"] == name for j in saved["jobs"]),
              "jobs.json holds the job", [j["id"] for j in saved["jobs"]])
        rule_files = [n for n in os.listdir(d.state_dir) if n.startswith("rules")]
        check(rule_files, "a rules state file", os.listdir(d.state_dir))
        with open(os.path.join(d.state_dir, rule_files[0])) as f:
            text = f.read()
        check(rule["id"] in text, "the rules state file holds the rule", text[:200])

def test_path_refusal_does_not_echo_bytes():
    """A file flashd opens by path for a client is never quoted back: a
    refusal names no word of it (the vector table's stack pointer and reset
    vector, which the same refusal shows for an image sent as data), and a
    text file is not previewed."""
    require_vboard()
    import struct
    import tempfile
    # a vector table whose stack pointer is not in any RAM
    image = struct.pack("<II", 0x5EC4E7A5, 0x1234ABCD | 1) + bytes(4096)
    tmp = tempfile.mkdtemp(prefix="flashd-secret-")
    path = os.path.join(tmp, "secret.bin")
    text = os.path.join(tmp, "notes.txt")
    with open(path, "wb") as f:
        f.write(image)
    with open(text, "w") as f:
        f.write("password=hunter2 and more lines of text\n" * 20)
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        # listed (in Klipper after the flash of the test before): refused before any reboot
        harness.wait_for(lambda: harness.devices_by_port(c).get("1-1.1", {}).get("mode") in ("app", "dfu"),
                         timeout=60 * float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1")), what="board")
        by_data = c.request("job.flash", {"target": "octopus-pro", "image": {
            "data": base64.b64encode(image).decode()}})
        check("0x5ec4e7a5" in json.dumps(by_data).lower(), "data: the refusal quotes the stack pointer",
              by_data)
        for p, secret in ((path, "5ec4e7a5"), (text, "hunter2")):
            out = c.request("job.flash", {"target": "octopus-pro", "image": {"path": p}})
            check("error" in out or (out.get("result") or {}).get("job", {}).get("state") == "failed",
                  "refused", out)
            check(secret not in json.dumps(out).lower(), "path: no byte of the file in the answer", out)
            jobs = [j for j in c.call("job.list", {"all": True})["jobs"]
                    if j["image"]["name"] == os.path.basename(p)]
            check(jobs and secret not in json.dumps(jobs).lower(), "path: no byte of the file in the history",
                  jobs)


if __name__ == "__main__":
    harness.main([test_non_utf8_process_name, test_path_refusal_does_not_echo_bytes])
