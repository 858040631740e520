# SPDX-License-Identifier: LGPL-2.1-or-later
"""Headless Chromium driven through the DevTools protocol (tornado's
websocket client, no npm), and the Moonraker stand-in
(scripts/moonraker-standin.py) as a subprocess, for the web-*.py tests.

    with Browser() as b:
        b.open("http://127.0.0.1:PORT/?moonraker=...")
        b.wait("document.querySelectorAll('.board').length == 2")
        b.set_files("#image-file", ["/tmp/klipper.bin"])
        b.screenshot("/build/web-artifacts/boards.png")
"""

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import harness

try:
    import tornado.websocket
except ImportError:  # scripts/deps installs python3-tornado
    tornado = None

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))


def chromium_binary():
    # Debian's package is chromium (scripts/deps); other distributions name it otherwise
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser():
    if tornado is None:
        raise harness.Skip("python3-tornado is not installed (scripts/deps)")
    if chromium_binary() is None:
        raise harness.Skip("chromium is not installed (scripts/deps)")


def artifacts_dir():
    d = os.path.join(harness.build_root(), "web-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, width=1280, height=900):
        require_browser()
        self.tmp = tempfile.mkdtemp(prefix="flashd-chromium-")
        self.width, self.height = width, height
        self.loop = asyncio.new_event_loop()
        self.proc = None
        self.ws = None
        self.ids = 0
        self.session = None
        self.console = []   # console messages and exceptions of the page

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        args = [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
                "--remote-debugging-port=0", f"--user-data-dir={self.tmp}", "about:blank"]
        # the browser does not need the virtual boards' umockdev preload
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
        # stderr to a file: a pipe nobody reads would stall the browser once full
        self.stderr_path = os.path.join(self.tmp, "chromium.log")
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        # the browser-wide DevTools endpoint is also written to DevToolsActivePort
        port_file = os.path.join(self.tmp, "DevToolsActivePort")
        deadline = time.monotonic() + 30 * SCALE
        while not os.path.exists(port_file) or len(open(port_file).read().split("\n")) < 2:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited: {open(self.stderr_path).read()[-2000:]}")
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = open(port_file).read().split("\n")[:2]
        url = f"ws://127.0.0.1:{port}{path}"
        self.ws = self._run(lambda: tornado.websocket.websocket_connect(url, max_message_size=256 << 20))
        target = self.cdp("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.cdp("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})

    def close(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None
            # let tornado's reader task see the close before the loop goes
            self.loop.run_until_complete(asyncio.sleep(0.1))
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.loop.close()

    def _run(self, make, timeout=30):
        """Run the coroutine make() on this browser's loop (tornado binds
        its futures to the loop they are made on)."""
        async def go():
            return await asyncio.wait_for(make(), timeout * SCALE)
        return self.loop.run_until_complete(go())

    def cdp(self, method, params=None, session=None, timeout=30):
        self.ids += 1
        mid = self.ids
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._run(lambda: self.ws.write_message(json.dumps(msg)))
        deadline = time.monotonic() + timeout * SCALE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer to {method}")
            text = self._run(self.ws.read_message, timeout=left / SCALE)
            if text is None:
                raise BrowserError("the DevTools connection closed")
            reply = json.loads(text)
            if reply.get("id") == mid:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, ev):
        m = ev.get("method")
        p = ev.get("params", {})
        if m == "Runtime.consoleAPICalled":
            self.console.append(f"console.{p.get('type')}: " +
                                " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))

    def send(self, method, params=None, timeout=30):
        return self.cdp(method, params, session=self.session, timeout=timeout)

    # page --------------------------------------------------------------
    def open(self, url):
        # the old document is "complete" too until the new one replaces it
        self.eval("window.__leaving = true")
        self.send("Page.navigate", {"url": url})
        self.wait("!window.__leaving && document.readyState === 'complete'", what=f"{url} loaded")

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise BrowserError(f"{expr}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def wait(self, expr, timeout=20, what=None):
        """Until the JS expression is truthy; returns its value."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            v = self.eval(expr)
            # a DOM node comes back as {}: present, so true
            if v is not None and v is not False and v != 0 and v != "":
                return v
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what or expr}; page console: {self.console[-10:]}")
            time.sleep(0.05)

    def text(self, selector):
        return self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''")

    def click(self, selector):
        ok = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                       f" if (!e || e.disabled) return false; e.click(); return true; }})()")
        if not ok:
            raise BrowserError(f"cannot click {selector} (missing or disabled)")

    def select(self, selector, value):
        self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.value = {json.dumps(value)};"
                  f" e.dispatchEvent(new Event('change')); }})()")

    def set_files(self, selector, paths):
        """A file chosen in a file input, as a user does (DOM.setFileInputFiles)."""
        doc = self.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": doc, "selector": selector})["nodeId"]
        if not node:
            raise BrowserError(f"no element {selector}")
        self.send("DOM.setFileInputFiles", {"nodeId": node, "files": list(paths)})

    def screenshot(self, path):
        # the whole page, not only the viewport
        h = self.eval("Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": max(self.height, int(h)), "deviceScaleFactor": 1, "mobile": False})
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path


class StandIn:
    """scripts/moonraker-standin.py on a free TCP port and a temp Unix socket."""

    def __init__(self, unix_path, api_key=None, www=None, port=0):
        self.unix_path = unix_path
        self.tmp = tempfile.mkdtemp(prefix="flashd-standin-")
        self.ready = os.path.join(self.tmp, "ready")
        self.log_path = os.path.join(self.tmp, "standin.log")
        self.args = [sys.executable, os.path.join(harness.source_root(), "scripts", "moonraker-standin.py"),
                     "--port", str(port), "--unix", unix_path, "--ready-file", self.ready]
        if api_key:
            self.args += ["--api-key", api_key]
        if www:
            self.args += ["--www", www]
        self.proc = None
        self.port = None

    def __enter__(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        harness.wait_for(lambda: os.path.exists(self.ready) or self.proc.poll() is not None,
                         timeout=20 * SCALE, what="the stand-in listening")
        if self.proc.poll() is not None:
            raise RuntimeError("moonraker-standin.py exited: " + open(self.log_path).read())
        self.port = int(open(self.ready).read())
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, page="/", query=""):
        return f"http://127.0.0.1:{self.port}{page}{query}"

    def log_text(self):
        return open(self.log_path).read()
