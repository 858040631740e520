#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashd(8) documents every key flashd.conf accepts, in the right section.

The keys are read from the parsers themselves (daemon/daemon-config.c for
[flashd], daemon/moonraker/moonraker-config.c for [moonraker]), so a key
added there without a line in daemon/flashd.8.scd fails here; and every
key the man page lists must be one the parser accepts.
"""

import os
import re
import sys

import harness

SRC = harness.source_root()


def parser_keys(path, function):
    with open(os.path.join(SRC, path)) as f:
        text = f.read()
    start = text.index(function + "(")
    body = text[start:text.index("\n}\n", start)]
    return set(re.findall(r'streq\(name,\s*"([a-z_]+)"\)', body))


def man_sections():
    """{"flashd": keys, "moonraker": keys} from the CONFIGURATION section."""
    with open(os.path.join(SRC, "daemon", "flashd.8.scd")) as f:
        text = f.read()
    conf = text[text.index("# CONFIGURATION"):]
    conf = conf[:conf.index("\n# ", 1)]
    head, _, moonraker = conf.partition("*[moonraker]*")
    moonraker, _, klipper = moonraker.partition("*[klipper]*")
    key = re.compile(r"^\*([a-z_]+)\* = ", re.M)
    return {"flashd": set(key.findall(head)), "moonraker": set(key.findall(moonraker)),
            "klipper": set(key.findall(klipper))}


def main():
    parsers = {
        "flashd": parser_keys("daemon/daemon-config.c", "static int config_on_key"),
        "moonraker": parser_keys("daemon/moonraker/moonraker-config.c", "int moonraker_config_on_key"),
        "klipper": parser_keys("daemon/update/klipper-config.c", "int klipper_config_on_key"),
    }
    # the scan must see keys known to exist, or it proves nothing
    assert {"socket_group", "boards_dir", "stop_units"} <= parsers["flashd"], parsers["flashd"]
    assert {"socket", "enable_flashing"} <= parsers["moonraker"], parsers["moonraker"]
    man = man_sections()
    failures = 0
    for section in parsers:
        undocumented = sorted(parsers[section] - man[section])
        unknown = sorted(man[section] - parsers[section])
        if undocumented:
            failures += 1
            print(f"FAIL: [{section}] keys missing from flashd.8: {', '.join(undocumented)}")
        if unknown:
            failures += 1
            print(f"FAIL: flashd.8 lists [{section}] keys the parser does not accept: {', '.join(unknown)}")
        print(f"[{section}]: {len(parsers[section])} keys, {len(man[section])} documented")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
