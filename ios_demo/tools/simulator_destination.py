"""Print an `xcodebuild -destination` for an available iPhone simulator (the newest iOS 17+ runtime).

`xcodebuild test` needs a concrete simulator, and the names preinstalled on CI images change with every Xcode;
this picks one from `xcrun simctl list devices available --json`:

    xcodebuild ... -destination "$(python tools/simulator_destination.py)" test

Prints e.g. `platform=iOS Simulator,id=6A1F...`. Exit code 1, with the reason on stderr, if there is none.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

MIN_IOS = (17, 0)


def runtime_version(runtime: str) -> tuple[int, ...] | None:
    """(18, 2) for 'com.apple.CoreSimulator.SimRuntime.iOS-18-2'; None for other platforms."""
    match = re.search(r"SimRuntime\.iOS-(\d+(?:-\d+)*)$", runtime)
    return tuple(int(part) for part in match.group(1).split("-")) if match else None


def pick(devices: dict) -> str | None:
    """The UDID of an available iPhone on the newest iOS runtime at or above MIN_IOS."""
    candidates = []
    for runtime, entries in devices.get("devices", {}).items():
        version = runtime_version(runtime)
        if version is None or version < MIN_IOS:
            continue
        for entry in entries:
            if entry.get("isAvailable", True) and entry.get("name", "").startswith("iPhone") and entry.get("udid"):
                booted = entry.get("state") == "Booted"
                candidates.append((version, booted, entry["name"], entry["udid"]))
    if not candidates:
        return None
    return max(candidates)[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="Read this `simctl list devices --json` output instead of running xcrun.")
    args = parser.parse_args(argv)
    if args.json:
        listing = json.loads(args.json.read_text())
    else:
        output = subprocess.run(["xcrun", "simctl", "list", "devices", "available", "--json"],
                                check=True, capture_output=True, text=True).stdout  # fmt: skip
        listing = json.loads(output)
    udid = pick(listing)
    if udid is None:
        print(f"no available iPhone simulator with iOS {'.'.join(map(str, MIN_IOS))} or newer: "
              "install one in Xcode > Settings > Platforms", file=sys.stderr)  # fmt: skip
        return 1
    print(f"platform=iOS Simulator,id={udid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
