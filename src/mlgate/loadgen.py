"""The load generator: drives an HTTP endpoint with locust and records every request itself.

It runs as its own process, `python -m mlgate.loadgen --spec FILE`: importing locust
monkey-patches the standard library with gevent, which must never happen to the mlgate process
or to a test run. So this module's top level imports only the standard library — the load stage
imports the spec, the payload reader and the record reader from here — and locust is imported
inside the child alone, by `mlgate.loadgen_locust`, which drives the load.

The child writes two files next to its spec: the records (one line per request, tab-separated:
start offset in seconds from the start of the load, latency in milliseconds at full precision,
1 for success or 0, the HTTP status or the exception's class name, and the index of the target
it went to) and a result document
(an error that stopped the run, the client's CPU use, exceptions raised by a locustfile's tasks).
Locust's own statistics round response times above 100 ms, so they are not used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDS_FILE = "records.tsv"
RESULT_FILE = "result.json"
# Open loop: a request not sent because `max_in_flight` requests were already waiting.
IN_FLIGHT_LIMIT = "InFlightLimitReached"
# Still unanswered when the run had to end (the drain after the last request ran out).
UNFINISHED = "NoAnswerBeforeEnd"


class LoadError(Exception):
    """Bad input found while loading: the stage reports the message as the one reason."""


@dataclass(frozen=True)
class LoadSpec:
    """Everything the child needs; paths are absolute, the stage has checked the values."""

    url: str
    path: str
    payload: str | None
    locustfile: str | None
    users: int | None  # closed loop: this many users, each waiting for its previous answer
    rate: float | None  # open loop: requests scheduled per second whatever the answers
    warmup: float
    duration: float
    request_timeout: float
    max_in_flight: int
    budget: float  # seconds from the child's start by which its files must be written
    # Open loop: more servers loaded with `url` at the same rate each, request by request in
    # turn (A B, B A, ...), so whatever slows the machine slows every target alike.
    other_urls: list[str] = field(default_factory=list)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> LoadSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Record:
    offset_s: float  # when the request started (closed loop) or was scheduled (open loop)
    latency_ms: float
    ok: bool
    outcome: str  # the HTTP status, or the exception's class name when there was no answer
    target: int = 0  # which of the spec's URLs: 0 is `url`, i is other_urls[i - 1]


@dataclass
class Result:
    error: str | None = None
    client_cpu_percent: float | None = None
    task_exceptions: list[dict[str, Any]] = field(default_factory=list)


def shown(path: Path) -> str:
    """A path as a reason names it: relative to the working directory when it is inside."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_payload(path: Path) -> list[str]:
    """The request bodies of a JSON-lines file; blank lines are skipped."""
    name = shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadError(f"payload file {name} does not exist") from None
    except IsADirectoryError:
        raise LoadError(f"payload file {name} is a directory") from None
    except UnicodeDecodeError:
        raise LoadError(f"payload file {name} is not UTF-8 text") from None
    except OSError as exc:
        raise LoadError(f"payload file {name} cannot be read: {exc.strerror}") from None
    bodies: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as exc:
            raise LoadError(f"payload file {name} line {number} is not JSON: {exc}") from None
        except RecursionError:
            raise LoadError(f"payload file {name} line {number} is nested too deeply") from None
        bodies.append(line.strip())
    if not bodies:
        raise LoadError(f"payload file {name} holds no requests")
    return bodies


def read_records(path: Path) -> list[Record]:
    records: list[Record] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            offset, latency, ok, outcome, target = line.rstrip("\n").split("\t")
            records.append(Record(float(offset), float(latency), ok == "1", outcome, int(target)))
    return records


def read_result(path: Path) -> Result:
    return Result(**json.loads(path.read_text(encoding="utf-8")))


def _write(directory: Path, records: list[Record], result: Result) -> None:
    with (directory / RECORDS_FILE).open("w", encoding="utf-8") as handle:
        for r in records:
            handle.write(
                f"{r.offset_s!r}\t{r.latency_ms!r}\t{int(r.ok)}\t{r.outcome}\t{r.target}\n"
            )
    # The result is written last: its presence tells the stage the records are complete.
    (directory / RESULT_FILE).write_text(json.dumps(dataclasses.asdict(result)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlgate.loadgen", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True, help="the load spec (JSON)")
    args = parser.parse_args(argv)
    directory: Path = args.spec.parent
    spec = LoadSpec.read(args.spec)
    # Imported here: it imports locust, which must never happen in the mlgate process.
    from mlgate.loadgen_locust import run

    try:
        records, result = run(spec)
    except LoadError as exc:
        _write(directory, [], Result(error=str(exc)))
        return 2
    except Exception as exc:  # reported to the stage as its reason, with the traceback here
        traceback.print_exc()
        _write(directory, [], Result(error=f"load generator crashed: {type(exc).__name__}: {exc}"))
        return 1
    _write(directory, records, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
