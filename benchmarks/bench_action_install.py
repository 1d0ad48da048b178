"""What installing mlgate costs a user's job: actions/setup, and the root action up to and
including its install step, for the iris example (extras load, serve, quality), under act in
host mode.

- cold: an empty pip cache, no virtualenv and an empty actions/cache store - a first run;
- warm: the actions/cache store holds what the previous cold run saved (its pip cache and,
  where the actions cache it, its virtualenv); the pip cache directory itself starts empty,
  as on a fresh hosted runner - only what actions/cache restores is there.

actions/cache is replaced by benchmarks/act/cache (restores from a store on this machine,
tar + zstd as actions/cache does; the last step of each job saves, as its post step would), so
a restore here skips the download from GitHub's cache service that a hosted runner pays.
RUNNER_TEMP is one path, emptied before every run, as on a hosted runner (act makes a random one).

Packages: --wheelhouse DIR serves a directory of wheels on 127.0.0.1 as a PEP 503 index with
PyPI's caching headers (make it with `PIP_CONFIG_FILE=/dev/null pip download -d DIR
".[load,serve,quality]" "setuptools>=68" wheel` from pypi.org, with the Python the job uses),
so pip's cache behaves as with pypi.org: the package index is reachable from this machine only
through a relay that strips those headers, so pip caches nothing from it. A cold run then
downloads at disk speed: a hosted runner downloads the same bytes from pypi.org on top.
--index URL installs from that index instead (e.g. https://pypi.org/simple, for a cold run).
The user's pip configuration here (a local find-links and extra index) is ignored
(PIP_CONFIG_FILE=/dev/null). Prints per run the install steps' wall time, the whole act run's
wall and CPU time and the load average; per job and state the median and range. Run:

    .venv/bin/python benchmarks/bench_action_install.py --wheelhouse DIR [--repeats 3]
        [--states cold,warm,warm] [--jobs setup,root]
        [--actions-root DIR]  # another checkout's actions (e.g. /work/wt/base) to compare
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakegithub

from tests.helpers import github_with_pull  # noqa: E402

ACT_DIR = ROOT / "benchmarks" / "act"
STAND_INS = ROOT / "tests" / "e2e" / "stand-ins"
REPO = "octo/model"
TOKEN = "ghs_bench_token"
PINNED = {
    "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684": ACT_DIR / "cache",
    # Not reached (upload-report is off, trivy is not needed), but act resolves them.
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": STAND_INS
    / "upload-artifact",
    "aquasecurity/setup-trivy@3fb12ec12f41e471780db15c232d5dd185dcb514": STAND_INS / "setup-trivy",
}
# The steps of each job that install mlgate (act's names for them; composite steps included).
MEASURED = {
    "setup": {"./actions/setup"},
    "root": {
        "Compute the pip cache key",
        "Restore the pip cache",
        "Compute the cache keys",
        "Restore the virtualenv",
        "Install mlgate and the extras the configured stages need",
    },
}
STEP = re.compile(r"(?:Success|Failure) - Main (.+?) \[((?:[0-9.]+(?:h|ms|µs|us|ns|m|s))+)\]$")
DURATION = re.compile(r"([0-9.]+)(h|ms|µs|us|ns|m|s)")
UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def seconds(go_duration: str) -> float:
    """Go's time.Duration text (act prints it), e.g. 1m2.5s or 10.4ms."""
    return sum(float(n) * UNIT[u] for n, u in DURATION.findall(go_duration))


@dataclass
class Run:
    job: str
    state: str
    load: float
    steps: dict[str, float] = field(default_factory=dict)
    install: float = 0.0
    save: float = 0.0
    cpu: float = 0.0  # user + system CPU seconds of the whole act run (all its processes)
    ok: bool = True


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project(filename: str) -> str:
    """PEP 503 name of a wheel or sdist file."""
    stem = filename.split("-")[0] if filename.endswith(".whl") else filename.rsplit("-", 1)[0]
    return _normalized(stem)


@contextmanager
def local_index(wheelhouse: Path) -> Iterator[str]:
    """A PEP 503 index of wheelhouse on 127.0.0.1 sending PyPI's Cache-Control headers."""
    files = {f.name: f for f in wheelhouse.iterdir() if f.suffix in (".whl", ".gz", ".zip")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, body: bytes, kind: str, cache: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[0] == "simple":
                links = "".join(
                    f'<a href="/files/{n}">{n}</a>\n'
                    for n in sorted(files)
                    if _project(n) == _normalized(parts[1])
                )
                page = f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()
                self._send(page, "text/html", "max-age=600, public")  # as pypi.org's pages
            elif len(parts) == 2 and parts[0] == "files" and parts[1] in files:
                body = files[parts[1]].read_bytes()
                self._send(body, "application/octet-stream", "max-age=365000000, immutable, public")
            else:
                self.send_error(404)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def scratch_repo(actions_root: Path, where: Path) -> Path:
    """A committed copy of actions_root's files with the benchmark's workflow and stand-ins."""
    repo = where / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=actions_root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = actions_root / name
        if name.startswith((".github/", ".cache/", ".venv")) or not source.is_file():
            continue
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, repo / name)
    shutil.copytree(ACT_DIR, repo / "benchmarks" / "act", dirs_exist_ok=True)
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ACT_DIR / "workflow.yml", repo / ".github" / "workflows" / "bench.yml")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(
        ["git", "remote", "add", "origin", f"https://github.com/{REPO}.git"], cwd=repo, check=True
    )
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], cwd=repo, check=True)
    return repo


def clean_env(work: Path) -> dict[str, str]:
    """This process's environment without the test virtualenv on PATH (so no mlgate) and
    without this machine's pip settings."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env["XDG_CACHE_HOME"] = str(work / "xdg" / "cache")
    env["XDG_CONFIG_HOME"] = str(work / "xdg" / "config")
    return env


def run_once(repo: Path, work: Path, job: str, state: str, index: str) -> Run:
    pip_cache = work / "pip-cache"
    store = work / "store"
    runner_temp = work / "runner-temp"
    for stale in (work / "xdg", pip_cache, runner_temp):
        shutil.rmtree(stale, ignore_errors=True)
    if state == "cold":
        shutil.rmtree(store, ignore_errors=True)
    event = work / "event.json"
    event.write_text(json.dumps({"inputs": {"job": job}}))
    pip_env = [
        "PIP_CONFIG_FILE=/dev/null",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"PIP_CACHE_DIR={pip_cache}",
        f"PIP_INDEX_URL={index}",
        # pip caches plain-http responses only from trusted hosts (the local index).
        "PIP_TRUSTED_HOST=127.0.0.1",
    ]
    run = Run(job, state, os.getloadavg()[0])
    with github_with_pull(REPO, "d" * 40, TOKEN) as gh:
        command = [
            str(Path(sys.executable).parent / "act"),
            "workflow_dispatch",
            "-e",
            str(event),
            "-P",
            "ubuntu-latest=-self-hosted",
            "--no-cache-server",
            "--action-offline-mode",
            "-s",
            f"GITHUB_TOKEN={TOKEN}",
            "--env",
            f"GITHUB_API_URL={gh.url}",
            "--env",
            "MLGATE_WRITE_DELAY_SECONDS=0",
            "--env",
            f"MLGATE_BENCH_CACHE={store}",
            "--env",
            f"MLGATE_BENCH_RUNNER_TEMP={runner_temp}",
            "--env",
            "MLFLOW_DISABLE_TELEMETRY=true",
            "--env",
            "DO_NOT_TRACK=true",
        ]
        for setting in pip_env:
            command += ["--env", setting]
        for pinned, stand_in in PINNED.items():
            command += ["--local-repository", f"{pinned}={stand_in}"]
        env = clean_env(work)
        env.update(s.split("=", 1) for s in pip_env)  # type: ignore[misc]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, timeout=1800
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = result.stdout + result.stderr
    (work / f"act-{job}-{state}-{int(time.time())}.log").write_text(log)
    for line in log.splitlines():
        found = STEP.search(line)
        if found:
            name, duration = found.group(1), seconds(found.group(2))
            run.steps[name] = run.steps.get(name, 0.0) + duration
    wanted = MEASURED[job]
    run.install = sum(v for k, v in run.steps.items() if k in wanted)
    run.save = run.steps.get("BENCH-SAVE", 0.0)
    run.ok = result.returncode == 0 and bool(wanted & run.steps.keys())
    if not run.ok:
        print(log[-6000:], file=sys.stderr)
    steps = ", ".join(f"{k} {v:.1f}" for k, v in run.steps.items() if k in wanted)
    print(
        f"  {job:5} {state:4}  install {run.install:6.1f} s  post-step save {run.save:5.1f} s"
        f"  act {elapsed:6.1f} s (cpu {run.cpu:5.1f} s)  load {run.load:4.2f}"
        f"  {'ok' if run.ok else 'FAILED'}"
        f"  ({steps})",
        flush=True,
    )
    return run


def summarize(runs: list[Run]) -> None:
    print(
        "\njob    state  runs  install s: median (min-max)   post-step save s"
        "   act cpu s   load avg"
    )
    for job in dict.fromkeys(r.job for r in runs):
        for state in ("cold", "warm"):
            some = [r for r in runs if r.job == job and r.state == state and r.ok]
            if not some:
                continue
            times = [r.install for r in some]
            saves = [r.save for r in some]
            loads = [r.load for r in some]
            cpu = statistics.median(r.cpu for r in some)
            print(
                f"{job:6} {state:5}  {len(some):4}  {statistics.median(times):8.1f}"
                f" ({min(times):.1f}-{max(times):.1f})"
                f"          {statistics.median(saves):8.1f}"
                f"   {cpu:9.1f}"
                f"   {min(loads):.2f}-{max(loads):.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", default="setup,root")
    parser.add_argument("--states", default="cold,warm")
    parser.add_argument("--actions-root", type=Path, default=ROOT)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheelhouse", type=Path, help="serve these wheels on 127.0.0.1")
    source.add_argument("--index", help="a package index URL, e.g. https://pypi.org/simple")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if shutil.which("zstd") is None:
        parser.error("zstd is not on PATH (the actions/cache stand-in compresses with it)")
    work = Path(tempfile.mkdtemp(prefix="bench-action-install-"))
    try:
        with local_index(args.wheelhouse) if args.wheelhouse else _given(args.index) as index:
            print(
                f"actions from {args.actions_root.resolve()}; packages from {index}"
                f"{f' ({args.wheelhouse})' if args.wheelhouse else ''}; {os.cpu_count()} cores,"
                f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; work {work}"
            )
            repo = scratch_repo(args.actions_root.resolve(), work)
            runs: list[Run] = []
            for job in args.jobs.split(","):
                for _ in range(args.repeats):
                    for state in args.states.split(","):
                        runs.append(run_once(repo, work, job, state, index))
        summarize(runs)
        return 0 if all(r.ok for r in runs) else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _given(index: str) -> Iterator[str]:
    yield index


if __name__ == "__main__":
    sys.exit(main())
