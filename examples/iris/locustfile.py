"""A locust scenario for the iris model server: post the sample payloads and check the answers.

With mlgate (`stages.load.locustfile: locustfile.py`) the users get the stage's url as their host
and the configured payload file in MLGATE_LOAD_PAYLOAD. It runs with locust alone too:

    locust -f locustfile.py --headless -u 4 -t 30s --host http://127.0.0.1:8080
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from locust import FastHttpUser, constant, task

PAYLOAD = Path(os.environ.get("MLGATE_LOAD_PAYLOAD") or Path(__file__).with_name("payloads.jsonl"))
BODIES = [line for line in PAYLOAD.read_text(encoding="utf-8").splitlines() if line.strip()]


def rows_in(body: str) -> int:
    """How many predictions a request body asks for."""
    document = json.loads(body)
    if "instances" in document:
        return len(document["instances"])
    return len(document["dataframe_split"]["data"])


# Each body with the number of predictions its answer must hold, posted in turn by all users.
REQUESTS = itertools.cycle([(body, rows_in(body)) for body in BODIES])


class IrisUser(FastHttpUser):
    # No think time: each user sends its next request as soon as the previous one answered.
    wait_time = constant(0)

    @task
    def predict(self) -> None:
        body, rows = next(REQUESTS)
        with self.client.post(
            "/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            catch_response=True,
        ) as response:
            # A 200 with the wrong answer is a failure too: the status alone would pass it.
            if response.status_code == 200:
                predictions = (response.json() or {}).get("predictions")
                if not isinstance(predictions, list) or len(predictions) != rows:
                    response.failure(f"expected {rows} predictions, got {predictions!r}")
