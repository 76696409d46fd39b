"""Take docs/ray-dashboard.png: the Ray dashboard (token auth on) while a small OHGW study runs.

Starts a local Ray with a random token, runs a short LCBench experiment in a background thread, and
drives headless Chromium (``CHROMIUM_BIN``, default /usr/bin/chromium) over the DevTools protocol:
the token goes in as the dashboard's own cookie (``ray-authentication-token``, what
``POST /api/authenticate`` sets), then the page is captured.

    .venv/bin/python docs/tools/dashboard_screenshot.py [--out docs/ray-dashboard.png] [--page '#/overview']
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _capture(ws_url: str, url: str, token: str, out: Path, wait_s: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        n = 0

        async def call(method: str, **params):
            nonlocal n
            n += 1
            await ws.send_json({"id": n, "method": method, "params": params})
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("id") == n:
                    if "error" in data:
                        raise RuntimeError(f"{method}: {data['error']}")
                    return data["result"]

        await call("Network.enable")
        await call("Network.setCookie", name="ray-authentication-token", value=token, url=url.split("#")[0])
        await call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        await call("Page.enable")
        await call("Page.navigate", url=url)
        await asyncio.sleep(wait_s)
        shot = await call("Page.captureScreenshot", format="png")
        tmp = out.with_suffix(".tmp.png")
        tmp.write_bytes(base64.b64decode(shot["data"]))
        os.replace(tmp, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/ray-dashboard.png")
    ap.add_argument("--page", default="#/jobs", help="dashboard route to capture")
    ap.add_argument("--wait", type=float, default=8.0, help="seconds after loading before the capture")
    args = ap.parse_args()
    token = secrets.token_hex(16)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    import ray

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ohgw.studies.runner import run_experiment
    from ohgw.studies.study import ExperimentConfig
    from trainables.lcbench import search_space, train_lcbench

    ctx = ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                   dashboard_port=_free_port(), log_to_driver=False)
    url = f"http://{ctx.dashboard_url}/{args.page}"
    cfg = ExperimentConfig(experiment="dashboard-demo", space=search_space(),
                           base_config={"task_id": 167149, "epoch_s": 0.05}, max_t=27, budget=150.0, tau=0.9)
    out_dir = tempfile.mkdtemp(prefix="ohgw-demo-")
    study = threading.Thread(target=run_experiment, daemon=True,
                             args=(cfg, train_lcbench, ["asha+ohgw", "pasha+ohgw"], [0], out_dir),
                             kwargs={"quiet": True, "stream": io.StringIO()})
    study.start()
    time.sleep(15)  # the studies' tasks and trials are up
    port = _free_port()
    chromium = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    profile = tempfile.mkdtemp(prefix="ohgw-chromium-")
    proc = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                             f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [p for p in json.load(r) if p.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        asyncio.run(_capture(pages[0]["webSocketDebuggerUrl"], url, token, Path(args.out), args.wait))
        print(f"wrote {args.out} ({url})")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
