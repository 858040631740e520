#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The set-up scripts a newcomer runs first (scripts/deps, scripts/test).

- Every program a test looks for with shutil.which() (and skips or checks
  less without) comes from a package scripts/deps installs: on a fresh
  Debian 12 the whole suite runs, nothing skips. A test that needs outside
  input (a real Klipper tree) is in suite "optional", which scripts/test
  leaves out; the line that looks for its tool says "# optional:".
- scripts/setup-build applies its options to a build directory that exists
  already (as scripts/demo leaves one, without -Dwerror=true), and
  scripts/test configures both its build directories through it.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import harness

SRC = harness.source_root()


def deps_packages():
    with open(os.path.join(SRC, "scripts", "deps")) as f:
        m = re.search(r'^PACKAGES="([^"]*)"', f.read(), re.M)
    assert m, "scripts/deps has no PACKAGES list"
    return set(m.group(1).split())


def package_of(program):
    path = shutil.which(program)
    if not path:
        return None
    for p in (path, os.path.realpath(path)):
        r = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


def essential(package):
    """Debian installs Essential packages everywhere, minbase included."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Essential}", package], capture_output=True, text=True)
    return r.stdout.strip() == "yes"


def test_programs_tests_need_are_in_deps():
    if not shutil.which("dpkg-query"):
        raise harness.Skip("not a Debian system")
    packages = deps_packages()
    wanted = []  # alternatives found on one line: any one of them will do
    for path in sorted(glob.glob(os.path.join(SRC, "tests", "integration", "*.py"))):
        with open(path) as f:
            for line in f:
                alts = re.findall(r'shutil\.which\("([^"]+)"\)', line)
                if alts and "# optional:" not in line:
                    wanted.append((os.path.basename(path), alts))
    assert any("dbus-daemon" in a for _, a in wanted), "the scan found nothing: the pattern is stale"
    missing = []
    for test, alts in wanted:
        pkgs = [package_of(a) for a in alts]
        if not any(p in packages or essential(p) for p in pkgs if p):
            missing.append(f"{test}: {' or '.join(alts)} (package {', '.join(p or 'not installed' for p in pkgs)})")
    assert not missing, "scripts/deps does not install what these tests look for:\n  " + "\n  ".join(missing)


def build_options(build):
    r = subprocess.run(["meson", "introspect", "--buildoptions", build], capture_output=True, text=True,
                       check=True)
    return {o["name"]: o["value"] for o in json.loads(r.stdout)}


def test_setup_build_applies_options_to_an_existing_dir():
    with tempfile.TemporaryDirectory(prefix="flashd-setup-") as tmp:
        build = os.path.join(tmp, "build")
        # as scripts/demo makes it
        subprocess.run(["meson", "setup", build, SRC], capture_output=True, text=True, check=True)
        assert build_options(build)["werror"] is False
        r = subprocess.run([os.path.join(SRC, "scripts", "setup-build"), build, "-Dwerror=true"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert build_options(build)["werror"] is True, "-Dwerror=true not applied to an existing build dir"
        # a missing one is set up with the options
        fresh = os.path.join(tmp, "fresh")
        r = subprocess.run([os.path.join(SRC, "scripts", "setup-build"), fresh, "-Dwerror=true"],
                           capture_output=True, text=True, cwd=SRC)
        assert r.returncode == 0, r.stderr
        assert build_options(fresh)["werror"] is True


def test_readme_describes_the_summary_and_setup():
    """The README's "Two commands" say where to clone, how long each takes,
    and what the summary line of scripts/test can look like, as the script
    prints it."""
    with open(os.path.join(SRC, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("## Two commands"):]
    section = section[:section.index("\n## ", 1)]
    with open(os.path.join(SRC, "scripts", "test")) as f:
        script = f.read()
    # the script's own summary format, with and without skips
    # the last line is always the plain one; skips are counted above it
    last_print = [l for l in script.splitlines() if l.strip().startswith("print(")][-1]
    assert 'f"{passed} passed, {failed} failed"' in last_print, last_print
    assert 'f"{skipped} skipped (named above)"' in script
    assert "`N passed, N failed`" in section and "`N skipped (named above)`" in section, section
    assert "SKIPPED:" in script and "SKIPPED:" in section
    assert "clone" in section and "/root" in section, "where to clone"
    for cmd in ("scripts/demo", "scripts/test"):
        assert re.search(f"`{cmd}`" + r"[^.;]*? takes \d+(-\d+)? (s|min)", section), f"how long {cmd} takes"


def test_scripts_test_configures_through_setup_build():
    with open(os.path.join(SRC, "scripts", "test")) as f:
        text = f.read()
    body = text[text.index("setup() {"):]
    body = body[:body.index("\n}\n")]
    assert "scripts/setup-build" in body and "-Dwerror=true" in body, body
    assert "build.ninja" not in body, "setup() still skips configuring an existing build dir"


if __name__ == "__main__":
    harness.main([test_programs_tests_need_are_in_deps, test_setup_build_applies_options_to_an_existing_dir,
                  test_scripts_test_configures_through_setup_build, test_readme_describes_the_summary_and_setup])
