#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What flashctl tells a person, against the real flashd and virtual boards.
Run under vboard (meson does this):

    vboard --board skr-mini-e3-v3 --mode dfu \\
           --board octopus-pro-f446 --mode app --quirk no-1200-reboot \\
           --board octopus-pro-f429 --mode dfu -- python3 flashctl-output.py

- `info` on a G0 board in its ROM bootloader (256 pages of 2 KiB) prints a
  few ranges, the bootloader's pages marked, the flash size and the
  application start; on a board running Klipper the flash size and layout
  from the board database, and every candidate with its MCU and
  application start when the candidates differ.
- `rule add` says what it does at once to boards already present (flashing
  one, skipping one that holds the image, none matching); `rule list` shows
  the rule's name; `rule remove 1` takes the number `rule list` shows as
  rule-1.
- `flash` ends with what happened: sectors and bytes written and verified,
  or "Already up to date"; `jobs` shows the image's file name and what a
  finished job wrote (never an error code as progress); `job ID` shows the
  error once with its hint, the totals after the end, no repeated log line.
- While a job waits for a board that does not reboot by itself (the F446
  ignores the 1200-baud request), `job ID --follow` shows the limit and the
  board's hints on lines of their own; Ctrl-C stops following, the job goes
  on; Ctrl-C on `flash` cancels and names the next command; a lost daemon
  names the command that shows how the job ended.
- A board away from its port while its job reboots it keeps its identity:
  `list` shows it as rebooting with its job (JOB column), `info PORT`
  finds it, and a second `flash PORT` queues behind the job instead of
  finding no board.
- A device several boards fit is flashed when the image tells them apart
  (Klipper's MCU, where its vector table points) or the remaining boards
  agree on everything the flash needs; otherwise the refusal lists them with
  MCU and application start and the `board/variant` form, which `flash`
  and `info` accept. No "n/a", no "unknown board".
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import threading
import time

import harness
from jobs_helpers import APP, FAST_CONFIG, Boards, app_image, tmpdir, wait_job, write_image

G0, F446, F429 = "1-1.1", "1-1.2", "1-1.3"


def flashctl(d, *args, check_rc=0):
    p = subprocess.run([harness.flashctl_binary(), "--socket", d.socket_path, *args],
                       env=dict(os.environ, NO_COLOR="1"), capture_output=True, text=True,
                       timeout=30 * float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1")))
    if check_rc is not None:
        assert p.returncode == check_rc, (args, p.returncode, p.stdout, p.stderr)
    return p


def wait_ready(c, port):
    def ready():
        d = harness.devices_by_port(c).get(port)
        return d if d and (d.get("probed") or d.get("tty")) else None
    return harness.wait_for(ready, what=f"device {port} ready")


def sector_rows(out):
    return [line.split() for line in out.splitlines()
            if re.fullmatch(r"\s*\d+(-\d+)?\s+0x[0-9a-f]{8}-0x[0-9a-f]{8}\s+.*", line)]


def test_info_g0_pages_in_ranges():
    with harness.Flashd() as d:
        c = d.client()
        dev = wait_ready(c, G0)
        out = flashctl(d, "info", G0).stdout
        assert sector_rows(out) == [
            ["0-3", "0x08000000-0x08001fff", "4", "x", "2", "KiB", "rew", "bootloader"],
            ["4-255", "0x08002000-0x0807ffff", "252", "x", "2", "KiB", "rew", "application"],
        ], out
        assert "Flash: 512 KiB at 0x08000000" in out, out
        assert "Application at: 0x08002000 (after a 8 KiB bootloader)" in out, out
        assert dev["flash_size"] == 512 * 1024 and dev["app_offset"] == 0x2000, dev
        assert "unknown" not in out and "n/a" not in out, out


def test_info_app_mode_flash_and_candidates():
    with harness.Flashd() as d:
        c = d.client()
        dev = wait_ready(c, F446)
        out = flashctl(d, "info", F446).stdout
        assert "Mode: app" in out and "Flash: 512 KiB at 0x08000000" in out, out
        assert "Layout: 4x16K 1x64K 3x128K (board database)" in out, out
        assert [r[0] for r in sector_rows(out)] == ["0-3", "4", "5-7"], out
        # an F446 running Klipper could be boards with different bootloaders:
        # each candidate with its MCU and application start
        cands = {(x["name"], x["variant"]): x for x in dev["board_candidates"]}
        assert len({x["app_address"] for x in cands.values()}) > 1, cands
        assert dev["app_offset"] is None, dev
        for (name, variant), x in cands.items():
            assert f"{name}/{variant} (stm32f446xx, application at 0x{x['app_address']:08x})" in out, out
        assert "unknown" not in out and "n/a" not in out, out


G0_APP = 0x08002000


def test_rule_add_tells_about_present_boards():
    image = write_image(tmpdir(), app_image(12 * 1024, G0_APP, seed=31, mcu="stm32g0b1xx"), "bench.bin")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, G0)
        out = flashctl(d, "rule", "add", "--board", "skr-mini-e3-v3", "--image", image,
                       "--name", "bench").stdout
        assert "Rule rule-1 (bench) added: flash bench.bin" in out, out
        m = re.search(r"Board already present: 1-1.1 matches; flashing it now as job (\d+) "
                      r"\(flashctl job \d+ --follow\)\.", out)
        assert m, out
        job = wait_job(c, int(m.group(1)), timeout=60 * harness.DEFAULT_TIMEOUT / 10)
        assert job["state"] == "done", job
        rows = [line.split() for line in flashctl(d, "rule", "list").stdout.splitlines()]
        assert rows[0][:3] == ["ID", "NAME", "ENABLED"] and rows[1][:3] == ["rule-1", "bench", "yes"], rows
        out = flashctl(d, "rule", "remove", "1").stdout
        assert out.strip() == "Rule rule-1 (bench) removed.", out

        # the board runs the image now: a second rule for it in that mode
        # skips it, and says so
        harness.wait_for(lambda: (harness.devices_by_port(c).get(G0) or {}).get("tty"), what="G0 back in app")
        harness.wait_for(lambda: not c.call("job.list")["jobs"], what="no job busy with the board")
        out = flashctl(d, "rule", "add", "--board", "skr-mini-e3-v3", "--mode", "app", "--image", image).stdout
        assert "Rule rule-2 added" in out, out
        assert "Board already present: 1-1.1 matches; skipped: the board already holds image" in out, out
        # nothing present matches a rule for another board; a disabled rule says how it starts
        out = flashctl(d, "rule", "add", "--board", "skr-3", "--image", image).stdout
        assert "No board present now is flashed by it" in out, out
        out = flashctl(d, "rule", "add", "--port", "1-1.1", "--image", image, "--disabled").stdout
        assert "It is disabled: nothing is flashed until `flashctl rule enable rule-4`" in out, out
        assert flashctl(d, "rule", "remove", "rule-4").stdout.strip() == "Rule rule-4 removed."
        assert flashctl(d, "rule", "remove", "9", check_rc=None).returncode != 0


SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


def test_flash_end_line_and_job_view():
    tmp = tmpdir()
    good = write_image(tmp, app_image(12 * 1024, G0_APP, seed=41, mcu="stm32g0b1xx"), "klipper-g0.bin")
    wrong = write_image(tmp, app_image(12 * 1024, G0_APP, seed=42, mcu="stm32f446xx"), "for-f446.bin")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, G0)
        out = flashctl(d, "flash", G0, good).stdout
        assert re.search(r"^Done in \d+\.\d s: 6 sectors, 12 KiB written and verified\.$", out, re.M), out
        assert "running the new image" in out and "n/a" not in out, out
        wait_ready(c, G0)
        out = flashctl(d, "flash", G0, good).stdout
        assert re.search(r"^Already up to date: nothing written, \d+\.\d s\.$", out, re.M), out
        p = flashctl(d, "flash", G0, wrong, check_rc=5)

        jobs = json.loads(flashctl(d, "--json", "jobs", "--all").stdout)
        assert [j["image"]["name"] for j in jobs] == ["klipper-g0.bin"] * 2 + ["for-f446.bin"], jobs
        assert jobs[0]["result"] == {"sectors_written": 6, "sectors_unchanged": 0, "bytes_written": 12288,
                                     "bytes_verified": 12288}, jobs[0]
        assert jobs[1]["result"]["bytes_written"] == 0 and jobs[1]["result"]["sectors_unchanged"] == 6, jobs[1]
        rows = [line.split() for line in flashctl(d, "jobs", "--all").stdout.splitlines()]
        assert rows[0][:6] == ["ID", "STATE", "PROGRESS", "BOARD", "PORT", "IMAGE"], rows
        assert rows[1][1:4] == ["done", "12", "KiB"] and rows[1][7] == "klipper-g0.bin", rows
        assert rows[2][1:5] == ["done", "up", "to", "date"] and rows[2][7] == "klipper-g0.bin", rows
        assert rows[3][1:3] == ["failed", "-"] and rows[3][5] == "for-f446.bin", rows

        out = flashctl(d, "job", "1").stdout
        head, log = out.split("\nLog:\n")
        assert "Written: 6 sectors, 12 KiB written and verified" in head, out
        assert "Image: klipper-g0.bin (bin, 12 KiB at 0x08002000" in head, out
        assert "Bytes done" not in head and "Phase: none" not in head and "Rate" not in head, out
        lines = [l.split(" ", 1)[1] for l in log.strip().splitlines()]
        assert len(lines) == len(set(lines)), lines  # no line said twice

        out = flashctl(d, "job", "3").stdout
        head, log = out.split("\nLog:\n")
        error = jobs[2]["error"]["message"]
        assert head.count(error) == 1 and f"Error: check-mcu: {error}" in head, out
        assert "Hint: The firmware was built for another MCU" in head, out


def follower(d, *args):
    """flashctl in the background, its stderr read line by line into a list."""
    p = subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, NO_COLOR="1"))
    lines = []
    t = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, "")), daemon=True)
    t.start()
    killer = threading.Timer(120 * SCALE, p.kill)  # a hung follower fails the test, not hangs it
    killer.daemon = True
    killer.start()
    return p, lines, t


def test_waiting_follow_interrupt_lost_daemon():
    image = write_image(tmpdir(), app_image(16 * 1024, APP, seed=43, mcu="stm32f446xx"), "klipper-f446.bin")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, F446)
        job = int(flashctl(d, "flash", "--no-wait", "octopus-pro/f446", image).stdout)
        p, lines, t = follower(d, "job", str(job), "--follow")
        # the board ignores the reboot request: after reboot_wait_sec the job asks for a hand
        harness.wait_for(lambda: any(l.startswith("Hint: ") for l in lines), timeout=30 * SCALE,
                         what="the hint while waiting")
        text = "".join(lines)
        assert f"Job {job}: klipper-f446.bin onto octopus-pro on {F446}" in text, text
        assert "waiting-for-device (up to 20s)" in text, text
        assert re.search(r"waiting-for-device: the board has not shown up yet \(\d+s of 20s\); "
                         r"the job keeps waiting\n", text), text
        assert re.search(r"^Hint: [^;]*BOOT0[^;]*$", text, re.M), text
        p.send_signal(signal.SIGINT)
        assert p.wait(30 * SCALE) == 0
        t.join(10)
        assert f"stopped following job {job}; it goes on\nNext: `flashctl job {job} --follow`." in "".join(lines)
        assert c.call("job.get", {"job": job})["job"]["state"] == "waiting-for-device"
        flashctl(d, "cancel", str(job))
        harness.wait_for(lambda: c.call("job.get", {"job": job})["job"]["state"] == "cancelled",
                         timeout=30 * SCALE, what="first job cancelled")

        # Ctrl-C on flash cancels the job, then names the next command
        p, lines, t = follower(d, "flash", "octopus-pro/f446", image)
        harness.wait_for(lambda: any(j["id"] == job + 1 and j["state"] == "waiting-for-device"
                                     for j in c.call("job.list")["jobs"]),
                         timeout=30 * SCALE, what="second job waiting")
        p.send_signal(signal.SIGINT)
        assert p.wait(30 * SCALE) == 7
        t.join(10)
        text = "".join(lines)
        second = job + 1
        assert f"Job {second} cancelled" in text, text
        assert f"Next: `flashctl flash {F446} {image}` to try again (job {second} has the log: " \
               f"`flashctl job {second}`)." in text, text

        # the daemon goes away while a job is followed
        job = int(flashctl(d, "flash", "--no-wait", "octopus-pro/f446", image).stdout)
        harness.wait_for(lambda: c.call("job.get", {"job": job})["job"]["state"] == "waiting-for-device",
                         timeout=30 * SCALE, what="third job waiting")
        p, lines, t = follower(d, "job", str(job), "--follow")
        harness.wait_for(lambda: any("waiting-for-device" in l for l in lines), timeout=30 * SCALE,
                         what="follower started")
        d.stop()
        p.wait(30 * SCALE)
        t.join(10)
        assert f"lost flashd while following job {job}; once it runs again, `flashctl job {job} --follow` " \
               "shows how the job ended\n" in "".join(lines), lines


def test_port_keeps_identity_during_job():
    boards = Boards()
    image = write_image(tmpdir(), app_image(16 * 1024, APP, seed=44, mcu="stm32f446xx"), "klipper-f446.bin")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, F446)
        first = int(flashctl(d, "flash", "--no-wait", "octopus-pro/f446", image).stdout)
        harness.wait_for(lambda: c.call("job.get", {"job": first})["job"]["state"] == "waiting-for-device",
                         timeout=30 * SCALE, what="first job waiting for the bootloader")
        row = [l.split() for l in flashctl(d, "list").stdout.splitlines() if l.startswith(F446 + " ")]
        assert row and row[0][1] == "app" and row[0][-3:-1] == [str(first), "waiting-for-device"], row
        # the board goes away from the bus, as during a reboot into its bootloader
        boards.unplug(F446)
        harness.wait_for(lambda: (harness.devices_by_port(c).get(F446) or {}).get("mode") == "rebooting",
                         what="the port listed as rebooting")
        dev = harness.devices_by_port(c)[F446]
        assert dev["present"] is False and dev["job"]["id"] == first, dev
        row = [l.split() for l in flashctl(d, "list").stdout.splitlines() if l.startswith(F446 + " ")]
        assert row and row[0][1] == "rebooting" and str(first) in row[0], row
        assert f"Job: job {first} waiting-for-device" in flashctl(d, "info", F446).stdout

        # a second flash of the port queues behind the first job
        p = flashctl(d, "flash", "--no-wait", F446, image)
        second = int(p.stdout)
        job = c.call("job.get", {"job": second})["job"]
        assert job["state"] == "queued" and job["port"] == F446 and job["board"] == "octopus-pro", job
        assert any(f"job {first} reboots it" in l for l in job["log"]), job["log"]
        flashctl(d, "cancel", str(second))
        flashctl(d, "cancel", str(first))
        boards.plug(F446)
        wait_ready(c, F446)
        # with no job on it, a port whose board is gone is gone
        assert harness.devices_by_port(c)[F446]["job"] is None
        boards.unplug(F446)
        harness.wait_for(lambda: F446 not in harness.devices_by_port(c), what="the port gone without a job")
        p = flashctl(d, "flash", "--no-wait", F446, image, check_rc=None)
        assert p.returncode != 0 and "no connected board matches" in p.stderr, (p.stdout, p.stderr)
        boards.plug(F446)
        wait_ready(c, F446)


def test_ambiguous_boards_narrowed_by_the_image():
    tmp = tmpdir()
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, F429)
        wait_ready(c, F446)
        # an F429 in ROM DFU could be an Octopus Pro, an Octopus or an SKR Pro
        # (F407): Klipper's dictionary names the F429, the two left agree
        cands = {x["name"] for x in harness.devices_by_port(c)[F429]["board_candidates"]}
        assert {"octopus-pro", "octopus", "skr-pro"} <= cands, cands
        f429 = write_image(tmp, app_image(24 * 1024, APP, seed=51, mcu="stm32f429xx"), "klipper-f429.bin")
        p = flashctl(d, "flash", F429, f429)
        assert re.search(r"^Done in \d+\.\d s: \d+ sectors?, 24 KiB written and verified\.$", p.stdout, re.M), p.stdout
        assert "octopus-pro (or octopus) on 1-1.3 is running the new image" in p.stdout, p.stdout
        job = c.call("job.list", {"all": True})["jobs"][-1]
        assert job["board"] == "octopus-pro" and job["board_alternatives"] == ["octopus"], job
        assert "n/a" not in p.stdout + p.stderr and "unknown" not in p.stdout + p.stderr

        # an F446 running Klipper: an Octopus (Pro) has 32 KiB of bootloader, a
        # FYSETC S6 64 KiB; the reset vector says which the image was linked for
        for address, board in ((APP, "octopus-pro"), (0x08010000, "fysetc-s6")):
            img = write_image(tmp, app_image(16 * 1024, address, seed=52, mcu="stm32f446xx"), f"at-{address:x}.bin")
            job = int(flashctl(d, "flash", "--no-wait", F446, img).stdout)
            j = c.call("job.get", {"job": job})["job"]
            assert j["board"] == board and j["image"]["address"] == address, j
            flashctl(d, "cancel", str(job))
        # an image that fits both: refused, the candidates listed with MCU and
        # application start, and the form that picks one
        both = write_image(tmp, app_image(64 * 1024, 0x0800FF00, seed=53, mcu="stm32f446xx"), "both.bin")
        p = flashctl(d, "flash", F446, both, check_rc=None)
        assert p.returncode != 0, (p.stdout, p.stderr)
        for text in ("octopus-pro/f446 (stm32f446xx, application at 0x08008000)",
                     "fysetc-s6/f446 (stm32f446xx, application at 0x08010000)", "board/variant"):
            assert text in p.stderr, p.stderr
        assert "offsets differ" not in p.stderr and "n/a" not in p.stderr and "unknown" not in p.stderr, p.stderr
        # the board/variant form, as `info` prints the candidates
        job = int(flashctl(d, "flash", "--no-wait", "octopus-pro/f446", both).stdout)
        j = c.call("job.get", {"job": job})["job"]
        assert j["board"] == "octopus-pro" and j["variant"] == "f446" and j["port"] == F446, j
        flashctl(d, "cancel", str(job))
        out = flashctl(d, "info", "octopus-pro/f429").stdout
        assert f"Port: {F429}" in out, out


def test_device_gone_names_the_next_command():
    boards = Boards()
    image = write_image(tmpdir(), app_image(64 * 1024, APP, seed=61, mcu="stm32f429xx"), "klipper-f429.bin")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, F429)
        # the cable is pulled after the third data block, plugged back 300 ms later
        boards.quirk(F429, "unplug=3,300")
        try:
            p = flashctl(d, "flash", F429, image, check_rc=6)
        finally:
            boards.unquirk(F429, "unplug")
        job = c.call("job.list", {"all": True})["jobs"][-1]
        assert job["error"]["name"] == "device-gone", job
        assert f"Next: `flashctl flash {F429} {image}` to try again (job {job['id']} has the log: " \
               f"`flashctl job {job['id']}`)." in p.stderr, p.stderr
        wait_ready(c, F429)


def test_waiting_line_counts_on_a_terminal():
    image = write_image(tmpdir(), app_image(16 * 1024, APP, seed=45, mcu="stm32f446xx"), "klipper-f446.bin")
    with harness.Flashd(config=FAST_CONFIG) as d:
        c = d.client()
        wait_ready(c, F446)
        job = int(flashctl(d, "flash", "--no-wait", "octopus-pro/f446", image).stdout)
        master, slave = pty.openpty()
        p = subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, "job", str(job), "--follow"],
                             stdout=subprocess.DEVNULL, stderr=slave, env=dict(os.environ, NO_COLOR="1"))
        os.close(slave)
        seen, buf = set(), b""
        deadline = time.monotonic() + 30 * SCALE
        try:
            # the waiting line is redrawn with the time waited and the limit
            while len(seen) < 3 and time.monotonic() < deadline:
                if select.select([master], [], [], 1)[0]:
                    try:
                        buf += os.read(master, 4096)
                    except OSError:
                        break
                seen = set(re.findall(rb"\r\x1b\[Kwaiting-for-device +(\d+)s of 20s", buf))
            assert len(seen) >= 3, buf
            # the hint interrupts the line, on lines of its own
            assert re.search(rb"\r\x1b\[K[^\r\n]*\r?\nHint: ", buf) or b"\nHint: " in buf, buf
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(30 * SCALE)
            os.close(master)
            flashctl(d, "cancel", str(job))


if __name__ == "__main__":
    harness.main([test_info_g0_pages_in_ranges, test_info_app_mode_flash_and_candidates,
                  test_rule_add_tells_about_present_boards, test_flash_end_line_and_job_view,
                  test_waiting_follow_interrupt_lost_daemon, test_port_keeps_identity_during_job,
                  test_ambiguous_boards_narrowed_by_the_image, test_device_gone_names_the_next_command,
                  test_waiting_line_counts_on_a_terminal])
