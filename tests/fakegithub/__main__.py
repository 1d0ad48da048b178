"""Serve a FakeGitHub until SIGTERM/SIGINT, for tests that drive mlgate in a subprocess.

    python -m tests.fakegithub --port 0 --seed seed.json --state-file state.json

prints ``listening on http://127.0.0.1:PORT`` once it accepts requests. ``--seed`` takes the
document FakeGitHub.seed() applies; ``--state-file`` is rewritten with FakeGitHub.snapshot()
after every request, so the parent process can read violations and state.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from .server import FakeGitHub


def _state_writer(path: Path) -> Callable[[FakeGitHub], None]:
    def write(gh: FakeGitHub) -> None:
        # Write then rename, so a reader never sees half a file.
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(gh.snapshot(), indent=1), encoding="utf-8")
        os.replace(partial, path)

    return write


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakegithub", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=Path, help="JSON with tokens, repos and pulls to add")
    parser.add_argument("--state-file", type=Path, help="JSON state, rewritten on every change")
    args = parser.parse_args(argv)

    write_state = _state_writer(args.state_file) if args.state_file else None
    gh = FakeGitHub(port=args.port, on_change=write_state)
    if args.seed:
        gh.seed(json.loads(args.seed.read_text(encoding="utf-8")))
    if write_state:  # the file exists before "listening" is printed
        write_state(gh)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with gh:
        print(f"listening on {gh.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
