"""Open the demo's report in headless Chromium and save a full-page screenshot.

    python benchmarks/report_screenshot.py demo-out/report.html [--out report.png]

Checks what a person sees: the page loads, every image on it decodes, and a screenshot is written.
Needs Debian's ``chromium`` (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="PNG to write (default: beside the report)")
    ap.add_argument("--height", type=int, default=6000, help="viewport height in pixels (the page is long)")
    args = ap.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no chromium found: apt-get install chromium", file=sys.stderr)
        return 2
    page = args.report.resolve()
    html = page.read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    missing = [src for src in images if not (page.parent / src).exists()]
    for src in images:
        if src not in missing:
            Image.open(page.parent / src).verify()
    out = (args.out or page.with_suffix(".png")).resolve()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size=1280,{args.height}",
                        f"--screenshot={out}", page.as_uri()], check=True, capture_output=True, timeout=120)
    shot = Image.open(out)
    print(f"{page}: {len(images)} images, {len(missing)} missing; screenshot {out} ({shot.width}x{shot.height})")
    for src in missing:
        print(f"  missing: {src}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
