#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The web panel (web/) in headless Chromium, against the Moonraker
stand-in (scripts/moonraker-standin.py), the real flashd with --moonraker
and virtual boards. Under

    vboard --board octopus-pro-f429 --mode app    (1-1.1, running Klipper)
           --board skr-mini-e3-v3 --mode dfu      (1-1.2, in its ROM DFU bootloader)
           --timing real --scale 0.3

- Boards: both boards with their port path as text, mode, board, MCU, and
  the layout bar with the bootloader region marked;
- Flash: an image picked with the file input flashes the Octopus Pro from
  Klipper back to Klipper; the page shows the plan first, then the progress
  bar moving through the states and phases, then "Done"; the bytes are in
  the virtual flash; the job is in the History view with its log;
- an image built for the wrong address shows flashd's refusal reason;
- a job on the SKR is cancelled from the page while it flashes;
- a job started by another client shows on its board's card and the Flash
  view follows it to its end;
- the SKR unplugged vanishes from the page;
- without flashd the page says flashd is not connected and what to change;
  with enable_flashing = no it says read-only and how to enable flashing,
  and Flash is disabled; an image dropped on the page is taken as picked;
- with an API key required, the page asks for it and connects with it;
- Moonraker restarting: the page says so, reconnects, shows the boards again.
Screenshots of each view go to <build>/web-artifacts/.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import harness
from browser_helpers import Browser, StandIn, artifacts_dir, require_browser
from jobs_helpers import flash_rpc, wait_job
from moonraker_helpers import APP, Boards, app_image, check, check_flash, flashd_with_moonraker, wait_ready

OCTOPUS, SKR = "0", "1"
OCTOPUS_PORT, SKR_PORT = "1-1.1", "1-1.2"
SKR_APP = 0x08002000  # SKR Mini E3 V3 (STM32G0B1): 8 KiB bootloader
SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


def shot(b, name):
    path = b.screenshot(os.path.join(artifacts_dir(), name))
    print(f"screenshot {path}")


def boards_listed(b, ports):
    q = "[...document.querySelectorAll('#view-boards .board .port')].map(e => e.textContent).join(' ')"
    want = " ".join(ports)
    return b.wait(f"{q} === {want!r}", timeout=30, what=f"boards {ports} in the page")


def job_state(b):
    return b.eval("(() => { const j = document.getElementById('job'); const p = document.getElementById('job-progress');"
                  " return j && j.dataset.state ? {state: j.dataset.state, phase: p && p.dataset.phase,"
                  " pct: p && parseFloat(p.dataset.pct), text: (document.getElementById('job-state') || {}).textContent}"
                  " : null; })()")


# Every render of the job box, recorded in the page as it happens (polling
# from here would miss states shorter than a round trip).
RECORDER = """(() => {
  window.__samples = [];
  const rec = () => {
    const j = document.getElementById('job'), p = document.getElementById('job-progress');
    if (!j || !j.dataset.state) return;
    const s = {state: j.dataset.state, phase: p ? p.dataset.phase : null, pct: p ? parseFloat(p.dataset.pct) : null,
               text: (document.getElementById('job-state') || {}).textContent};
    const last = window.__samples[window.__samples.length - 1];
    if (!last || JSON.stringify(last) !== JSON.stringify(s)) window.__samples.push(s);
  };
  new MutationObserver(rec).observe(document.getElementById('job'), {subtree: true, childList: true, attributes: true});
  return true;
})()"""


def follow_job(b, until=("done", "failed", "cancelled"), timeout=120, on_sample=None):
    """Every job box state the page showed until its state is in `until`."""
    seen = 0
    deadline = time.monotonic() + timeout * SCALE
    while True:
        samples = b.eval("window.__samples")
        for s in samples[seen:]:
            if on_sample:
                on_sample(s)
        seen = len(samples)
        if samples and samples[-1]["state"] in until:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not reach {until}: {samples[-5:]}")
        time.sleep(0.1)


def write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_panel():
    require_browser()
    boards = Boards()
    d, path = flashd_with_moonraker(enable_flashing=True, via_cli=True)
    good = app_image(256 * 1024, APP, seed=19, mcu="stm32f429xx")
    wrong = app_image(16 * 1024, 0x08000000, seed=20)     # linked without the 32 KiB bootloader
    skr_image = app_image(320 * 1024, SKR_APP, seed=21, mcu="stm32g0b1xx")
    with StandIn(path) as mr, d, Browser() as b:
        own = d.client()
        wait_ready(own, OCTOPUS_PORT)
        wait_ready(own, SKR_PORT)
        b.open(mr.url("/", f"?moonraker=ws://127.0.0.1:{mr.port}/websocket"))
        b.wait("document.getElementById('conn').dataset.state === 'ready'", timeout=30, what="flashd connected")

        # Boards --------------------------------------------------------
        boards_listed(b, [OCTOPUS_PORT, SKR_PORT])
        b.wait(f"document.querySelector('.board[data-port=\"{SKR_PORT}\"] .layout-bar')", what="SKR layout bar")
        octo = b.text(f'.board[data-port="{OCTOPUS_PORT}"]')
        check("running its firmware" in octo and "stm32f429" in octo.lower(), "Octopus Pro in app mode with its MCU", octo)
        check("octopus" in octo.lower(), "the board name or its candidates", octo)
        boot = b.eval(f"document.querySelectorAll('.board[data-port=\"{OCTOPUS_PORT}\"] .sector.bootloader').length")
        check(boot == 2, "the Octopus Pro's 32 KiB bootloader: two 16 KiB sectors marked", boot)
        skr = b.text(f'.board[data-port="{SKR_PORT}"]')
        check("DFU bootloader" in skr, "SKR in DFU mode", skr)
        shot(b, "boards.png")

        # Flash: plan, start, progress, done -----------------------------
        tmp = d.tmp
        b.eval("location.hash = '#flash'")
        b.select("#flash-target", OCTOPUS_PORT)
        b.set_files("#image-file", [write(tmp, "klipper.bin", good)])
        plan = b.wait("(() => { const t = document.getElementById('plan').textContent;"
                      " return t.includes('klipper.bin') && t; })()", what="the plan for the image")
        check("0x08008000" in plan and "reboots it into its bootloader" in plan, "the plan says where and how", plan)
        check("inside the image" in plan, "the vector table looks right", plan)
        b.wait("!document.getElementById('flash-start').disabled", what="Flash enabled")
        shot(b, "flash-plan.png")
        b.eval(RECORDER)
        b.click("#flash-start")
        phases_seen, states_seen, pcts = set(), [], []
        shots = {"write": False}

        def sample(s):
            if not states_seen or states_seen[-1] != s["state"]:
                states_seen.append(s["state"])
            if s["state"] == "flashing":
                phases_seen.add(s["phase"])
                if s["phase"] == "write":
                    pcts.append(s["pct"])
                    if not shots["write"] and 10 < s["pct"] < 90:
                        shots["write"] = True
                        shot(b, "flash-progress.png")

        follow_job(b, on_sample=sample)
        final = job_state(b)
        check(final["state"] == "done", "the page shows done", (final, states_seen, b.text("#job-log")))
        check("Done" in final["text"] and "running" in final["text"] or "runs the new image" in final["text"],
              "the end state in words", final["text"])
        check(states_seen[0] in ("queued", "rebooting") and "flashing" in states_seen and "waiting-for-app" in states_seen,
              "states shown in order", states_seen)
        check({"erase", "write"} <= phases_seen, "erase and write phases shown", phases_seen)
        # progress reaches the page at most twice a second: 0 at the phase's
        # start, then at least one step in between (more on an idle machine;
        # under ASan on a loaded one the page may sample only one)
        check(len(set(pcts)) >= 2 and pcts == sorted(pcts) and any(0 < p < 100 for p in pcts),
              "the progress bar moved during the write", pcts)
        b.wait("document.getElementById('job-log').textContent.includes('done')", what="the job log")
        shot(b, "flash-done.png")
        check_flash(boards, OCTOPUS, APP, good)
        # what the board runs now, from Klipper's identify answer (the
        # version in the image's dictionary), on its card
        b.wait(f"(document.querySelector('.board[data-port=\"{OCTOPUS_PORT}\"]') || {{}}).textContent"
               "?.includes('v0.12.0-test')", what="the firmware version on the board's card", timeout=60)

        # a refused image: the reason verbatim ---------------------------
        boards_listed(b, [OCTOPUS_PORT, SKR_PORT])
        b.select("#flash-target", OCTOPUS_PORT)
        b.set_files("#image-file", [write(tmp, "wrong.bin", wrong)])
        b.wait("document.getElementById('plan').textContent.includes('wrong.bin')", what="plan for wrong.bin")
        check("outside the image" in b.text("#plan"), "the plan warns about the vector table", b.text("#plan"))
        before = boards.counters(OCTOPUS)["sector_erases"]
        b.wait("!document.getElementById('flash-start').disabled", what="Flash enabled")
        b.click("#flash-start")
        refusal = b.wait("(() => { const r = document.getElementById('flash-result');"
                         " return !r.hidden && r.textContent; })()", what="the refusal")
        jobs = own.call("job.list", {"all": True})["jobs"]
        refused = [j for j in jobs if j["state"] == "failed"][-1]
        check(refused["error"]["name"] == "check-vector-table", "flashd refused by the vector table", refused)
        check(refused["error"]["message"] in refusal and "check-vector-table" in refusal,
              "the page shows flashd's reason verbatim", (refusal, refused["error"]))
        check(boards.counters(OCTOPUS)["sector_erases"] == before, "nothing erased")
        shot(b, "flash-refused.png")

        # cancel a job on the SKR while it flashes -----------------------
        b.select("#flash-target", SKR_PORT)
        b.set_files("#image-file", [write(tmp, "skr.bin", skr_image)])
        b.wait("document.getElementById('plan').textContent.includes('skr.bin')", what="plan for skr.bin")
        b.wait("!document.getElementById('flash-start').disabled", what="Flash enabled")
        b.click("#flash-start")
        b.wait("(() => { const j = document.getElementById('job'); return j.dataset.state === 'flashing'"
               " && document.getElementById('job-cancel'); })()", timeout=60, what="the SKR job flashing")
        b.eval(RECORDER)
        b.click("#job-cancel")
        follow_job(b)
        final = job_state(b)
        check(final["state"] == "cancelled" and "Cancelled" in final["text"], "the page shows cancelled", final)
        skr_job = own.call("job.list", {"all": True})["jobs"][-1]
        check(skr_job["state"] == "cancelled" and skr_job["port"] == SKR_PORT, "flashd cancelled the SKR job", skr_job)
        check(boards.read(SKR, SKR_APP, len(skr_image)) != skr_image, "the cancelled image is not all written")

        # History -------------------------------------------------------
        b.eval("location.hash = '#history'")
        b.wait("document.querySelectorAll('#view-history tr.job').length === 3", what="three jobs in the history")
        states = b.eval("[...document.querySelectorAll('#view-history tr.job .outcome')].map(e => e.textContent)")
        check(states == ["cancelled", "failed: check-vector-table", "done"], "history newest first", states)
        b.click("#view-history tr.job:last-child")
        b.wait("(document.querySelector('#view-history .job-log') || {}).textContent?.includes('flashing')",
               what="the done job's log")
        shot(b, "history.png")

        # Rules ---------------------------------------------------------
        b.eval("location.hash = '#rules'")
        b.wait("document.querySelectorAll('#rule-form select[name=board] option').length > 3", what="board list")
        b.select("#rule-form select[name=board]", "skr-mini-e3-v3")
        b.set_files("#rule-form input[name=image]", [write(tmp, "bench.bin", skr_image)])
        b.eval("document.querySelector('#rule-form input[name=port]').value = '1-9.*'")  # no board there
        b.click("#rule-form button[type=submit]")
        b.wait("document.querySelectorAll('#rule-list .rule').length === 1", what="the rule listed")
        rules = own.call("rule.list")["rules"]
        check(len(rules) == 1 and rules[0]["match"]["board"] == "skr-mini-e3-v3" and rules[0]["match"]["port"] == "1-9.*",
              "the rule in flashd", rules)
        rid = rules[0]["id"]
        b.click(f'.rule[data-rule="{rid}"] button')  # Disable
        b.wait(f"document.querySelector('.rule[data-rule=\"{rid}\"]').classList.contains('disabled')", what="disabled")
        check(own.call("rule.list")["rules"][0]["enabled"] is False, "disabled in flashd")
        shot(b, "rules.png")
        b.click(f'.rule[data-rule="{rid}"] button.danger')  # Remove
        b.wait("document.querySelectorAll('#rule-list .rule').length === 0", what="the rule removed")
        check(own.call("rule.list")["rules"] == [], "removed in flashd")

        # a job started elsewhere (flashctl, a rule) shows on its board and
        # the Flash view follows it --------------------------------------
        b.eval("location.hash = '#boards'")
        other = flash_rpc(own, SKR_PORT, skr_image)
        b.wait(f"(document.querySelector('.board[data-port=\"{SKR_PORT}\"] .active-job') || {{}}).textContent"
               f"?.startsWith('job {other['id']}:')", timeout=60, what="the running job on the SKR's card")
        b.wait(f"(document.querySelector('#job h3') || {{}}).textContent?.startsWith('Job {other['id']}:')",
               what="the Flash view follows the job")
        b.wait("document.getElementById('job').dataset.state === 'done'", timeout=120, what="the other job done")
        check(wait_job(own, other["id"])["state"] == "done", "flashd says done too")
        check(boards.read(SKR, SKR_APP, len(skr_image)) == skr_image, "the SKR holds the image")

        # unplug: the board vanishes -----------------------------------
        boards.unplug(SKR)
        boards_listed(b, [OCTOPUS_PORT])
        check(b.eval("[...document.querySelectorAll('#flash-target option')].every(o => o.value !== '1-1.2')"),
              "gone from the flash targets too")
        boards.plug(SKR)
        boards_listed(b, [OCTOPUS_PORT, SKR_PORT])
        errors = [c for c in b.console if c.startswith("exception")]
        check(errors == [], "no exception in the page", errors)


def installed_www():
    """The panel laid out as `meson install` puts it (meson introspect
    --installed): every file of web/ that the page loads must be installed
    under <datadir>/flashd/www, entry index.html."""
    out = subprocess.run(["meson", "introspect", "--installed", harness.build_root()],
                         capture_output=True, text=True, check=True).stdout
    installed = json.loads(out)
    web = os.path.join(harness.source_root(), "web")
    www = [dst for src, dst in installed.items() if src.startswith(web + os.sep) and "/flashd/www/" in dst]
    check(any(d.endswith("/flashd/www/index.html") for d in www), "index.html at <datadir>/flashd/www", www)
    root = www[0][:www[0].index("/flashd/www/") + len("/flashd/www/")]
    sources = {os.path.relpath(os.path.join(dp, f), web) for dp, _, fs in os.walk(web) for f in fs
               if f.endswith((".html", ".css", ".js"))}
    check(sources == {d[len(root):] for d in www}, "every page file installed, and only those",
          sorted(sources ^ {d[len(root):] for d in www}))
    tmp = tempfile.mkdtemp(prefix="flashd-www-")
    for src, dst in installed.items():
        if dst in www:
            os.makedirs(os.path.dirname(os.path.join(tmp, dst[len(root):])), exist_ok=True)
            shutil.copy(src, os.path.join(tmp, dst[len(root):]))
    return tmp


def test_not_connected_and_read_only():
    require_browser()
    d, path = flashd_with_moonraker(enable_flashing=False, via_cli=True)
    # served from the installed layout, at /flashd/ as nginx-flashd.conf does
    www = installed_www()
    with StandIn(path, www=www) as mr, Browser() as b:
        url = mr.url("/flashd/", f"?moonraker=ws://127.0.0.1:{mr.port}/websocket")
        b.open(url)
        b.wait("document.getElementById('conn').dataset.state === 'noagent'", what="no flashd")
        banner = b.wait("!document.getElementById('banner').hidden && document.getElementById('banner').textContent",
                        what="the banner")
        check("not connected" in banner and "--moonraker" in banner and "socket" in banner,
              "says flashd is not connected and what to change", banner)
        shot(b, "not-connected.png")
        with d:
            wait_ready(d.client(), OCTOPUS_PORT)
            b.wait("document.getElementById('conn').dataset.state === 'ready'", timeout=30, what="flashd connected")
            boards_listed(b, [OCTOPUS_PORT, SKR_PORT])
            banner = b.wait("document.getElementById('banner').dataset.kind === 'readonly'"
                            " && document.getElementById('banner').textContent", what="the read-only banner")
            check("Read-only" in banner and "enable_flashing = yes" in banner, "says how to enable flashing", banner)
            b.eval("location.hash = '#flash'")
            b.select("#flash-target", OCTOPUS_PORT)
            b.set_files("#image-file", [write(d.tmp, "klipper.bin", app_image(8192, APP))])
            b.wait("document.getElementById('plan').textContent.includes('klipper.bin')", what="plan")
            check(b.eval("document.getElementById('flash-start').disabled"), "Flash is disabled when read-only")
            # an image dropped on the page is taken like a picked one
            b.eval("""(() => { const dt = new DataTransfer();
                dt.items.add(new File([':020000040800F2\\n:00000001FF\\n'], 'dropped.hex'));
                document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
            })()""")
            plan = b.wait("document.getElementById('plan').textContent.includes('dropped.hex')"
                          " && document.getElementById('plan').textContent", what="the dropped image in the plan")
            check("dropped.hex, 28 B, hex" in plan, "format and size of the dropped image", plan)
            shot(b, "read-only.png")
            check(d.client().call("job.list", {"all": True})["jobs"] == [], "no job made")
        # flashd gone: the page says so again
        b.wait("document.getElementById('conn').dataset.state === 'noagent'", timeout=30, what="flashd gone")
    shutil.rmtree(www, ignore_errors=True)


def test_api_key():
    require_browser()
    key = "0123456789abcdef0123456789abcdef"
    d, path = flashd_with_moonraker(enable_flashing=True, via_cli=True)
    with StandIn(path, api_key=key) as mr, d, Browser() as b:
        wait_ready(d.client(), OCTOPUS_PORT)
        b.open(mr.url("/", f"?moonraker=ws://127.0.0.1:{mr.port}/websocket"))
        b.wait("document.getElementById('conn').dataset.state === 'unauthorized'", what="asks for authorization")
        check(b.eval("!document.getElementById('auth').hidden"), "the API key form is shown")
        check(b.eval("document.querySelectorAll('.board').length") == 0, "nothing shown without authorization")
        b.eval(f"document.getElementById('api-key').value = {key!r}")
        b.click("#auth button")
        b.wait("document.getElementById('conn').dataset.state === 'ready'", timeout=30, what="connected with the key")
        boards_listed(b, [OCTOPUS_PORT, SKR_PORT])
        # the key is kept for the next visit (localStorage), as Mainsail keeps its login
        b.open(mr.url("/", f"?moonraker=ws://127.0.0.1:{mr.port}/websocket"))
        b.wait("document.getElementById('conn').dataset.state === 'ready'", timeout=30, what="reconnected with the stored key")


def test_moonraker_restart():
    """Moonraker restarts: the page says it is unreachable, reconnects by
    itself, and shows flashd's boards again once flashd has re-registered."""
    require_browser()
    d, path = flashd_with_moonraker(enable_flashing=True, via_cli=True)
    with d, Browser() as b:
        wait_ready(d.client(), OCTOPUS_PORT)
        with StandIn(path) as mr:
            port = mr.port
            b.open(mr.url("/", f"?moonraker=ws://127.0.0.1:{port}/websocket"))
            boards_listed(b, [OCTOPUS_PORT, SKR_PORT])
        b.wait("document.getElementById('conn').dataset.state === 'closed'", what="Moonraker gone")
        banner = b.wait("!document.getElementById('banner').hidden && document.getElementById('banner').textContent",
                        what="the banner")
        check("not reachable" in banner and f":{port}/websocket" in banner, "says Moonraker is not reachable", banner)
        check(b.eval("document.querySelectorAll('.board').length") == 0, "no stale boards while Moonraker is gone")
        with StandIn(path, port=port):
            b.wait("document.getElementById('conn').dataset.state === 'ready'", timeout=60, what="reconnected")
            boards_listed(b, [OCTOPUS_PORT, SKR_PORT])


if __name__ == "__main__":
    harness.main([test_panel, test_not_connected_and_read_only, test_api_key, test_moonraker_restart])
