"""Prefetch throughput against a raw HTTP download of the same files from the same local Hub.

Both run in a one-shot container of the serving image on the demo host, as appuser, with the
endpoint the deployed backend uses (the local fake Hub), into a fresh directory each time:
- prefetch: docker/prefetch_models.py's work (revision, file list, downloads, manifest), timed
  in-process after its imports;
- raw: the same files, each one GET of /{repo}/resolve/{commit}/{file} written to disk, timed
  the same way;
- warm: the prefetch again over the cache the cold one filled (everything cached).
Rounds alternate them; the medians are reported. Only the public test repo is fetched.
"""

from __future__ import annotations

import json
import shlex
import statistics
from typing import Any

from . import host
from .options import Options
from .stats import megabytes_per_s

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Runs in the image (python -c): argv[1] is prefetch or raw; prints one JSON line.
IN_CONTAINER = r"""
import json, os, sys, time, urllib.request
from pathlib import Path
mode, repo, endpoint = sys.argv[1], sys.argv[2], os.environ["HF_ENDPOINT"].rstrip("/")
home = Path(os.environ["HF_HOME"])
def snapshot_files():
    snaps = home / "hub" / ("models--" + repo.replace("/", "--")) / "snapshots"
    found = {}
    for snap in snaps.iterdir():
        for path in snap.rglob("*"):
            if path.is_file():
                found[str(path.relative_to(snap))] = path.stat().st_size
    return found
if mode == "prefetch":
    sys.argv = ["prefetch_models.py"]
    from src.prefetch_cli import main
    started = time.perf_counter()
    code = main()
    seconds = time.perf_counter() - started
    files = snapshot_files()
    print(json.dumps({"rc": code, "seconds": seconds, "files": files}))
else:
    names = json.loads(sys.argv[3])
    started = time.perf_counter()
    with urllib.request.urlopen(f"{endpoint}/api/models/{repo}/revision/main") as answer:
        commit = json.load(answer)["sha"]
    size = 0
    for name in names:
        target = home / "raw" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"{endpoint}/{repo}/resolve/{commit}/{urllib.request.quote(name)}"
        with urllib.request.urlopen(url) as answer, open(target, "wb") as out:
            while chunk := answer.read(1 << 20):
                size += out.write(chunk)
    print(json.dumps({"rc": 0, "seconds": time.perf_counter() - started, "bytes": size}))
"""


def _endpoint(options: Options) -> str:
    line = host.in_host(
        options.host,
        "grep -h '^HF_ENDPOINT=' /opt/nica/releases/*/stack.env | tail -n1",
        "reading HF_ENDPOINT of the releases",
    ).strip()
    return line.split("=", 1)[1].strip().strip('"')


def _run(options: Options, image: str, endpoint: str, directory: str, *args: str) -> dict[str, Any]:
    command = (
        f"docker run --rm --user 10001:10001 -v {directory}:/var/huggingface "
        f"-e HF_ENDPOINT={shlex.quote(endpoint)} -e HF_HUB_OFFLINE=0 "
        f"-e HF_MODEL_REPOS={REPO_ID} -e HF_TOKEN_FILE=/nonexistent "
        f"--entrypoint python {shlex.quote(image)} -c {shlex.quote(IN_CONTAINER)} "
        + " ".join(shlex.quote(arg) for arg in args)
    )
    out = host.in_host(options.host, command, f"{args[0]} in a container")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise host.HostError(f"{args[0]} in a container exited {result['rc']}")
    return result


def _fresh_dir(options: Options) -> str:
    return host.in_host(
        options.host,
        'd=$(mktemp -d /var/tmp/nica-bench-prefetch.XXXXXX) && chown 10001:10001 "$d" && echo "$d"',
        "making a scratch directory",
    ).strip()


def measure(options: Options) -> dict[str, Any]:
    image = str(host.release(options.host)["image"])
    endpoint = _endpoint(options)
    cold, raw, warm = [], [], []
    files: dict[str, int] = {}
    try:
        for round_index in range(options.rounds):
            host.say(f"prefetch: round {round_index + 1} of {options.rounds}")
            cached = _fresh_dir(options)
            result = _run(options, image, endpoint, cached, "prefetch", REPO_ID)
            cold.append(result["seconds"])
            files = result["files"]
            fetched = _run(
                options,
                image,
                endpoint,
                _fresh_dir(options),
                "raw",
                REPO_ID,
                json.dumps(sorted(files)),
            )
            if fetched["bytes"] != sum(files.values()):
                prefetched = sum(files.values())
                raise host.HostError(
                    f"the raw download got {fetched['bytes']} bytes, the prefetch {prefetched}"
                )
            raw.append(fetched["seconds"])
            warm.append(_run(options, image, endpoint, cached, "prefetch", REPO_ID)["seconds"])
    finally:
        host.in_host(options.host, "rm -rf /var/tmp/nica-bench-prefetch.*", "removing scratch")
    size = sum(files.values())
    prefetch_rate = megabytes_per_s(size, statistics.median(cold))
    raw_rate = megabytes_per_s(size, statistics.median(raw))
    return {
        "repo": REPO_ID,
        "files": len(files),
        "bytes": size,
        "prefetch_s": [round(value, 3) for value in cold],
        "raw_s": [round(value, 3) for value in raw],
        "warm_s_each": [round(value, 3) for value in warm],
        "prefetch_mb_s": round(prefetch_rate, 1),
        "raw_mb_s": round(raw_rate, 1),
        "warm_s": round(statistics.median(warm), 3),
    }
