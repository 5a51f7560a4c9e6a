"""Install the venv's ``python3`` kernelspec with ipykernel's start-up warning silenced.

ipykernel 7 warns "Kernel is running over TCP without encryption" at every
start; on loopback that is noise in CI logs. Errors still show.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

spec_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3"
spec_dir.mkdir(parents=True, exist_ok=True)
spec = {
    "argv": [
        sys.executable,
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--IPKernelApp.log_level=ERROR",
    ],
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "metadata": {"debugger": True},
}
# a new file renamed over the old: uv hardlinks kernel.json from its cache, so writing in place
# would rewrite every venv's kernelspec that shares the cache (another checkout's python in ours)
tmp = spec_dir / "kernel.json.tmp"
tmp.write_text(json.dumps(spec, indent=1))
tmp.replace(spec_dir / "kernel.json")
print(f"kernelspec python3 -> {spec_dir}")
