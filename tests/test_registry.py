"""The registry layer against real MLflow stores: the embedded sqlite store, and a real
`mlflow server` (sqlite backend, proxied artifacts) on 127.0.0.1 shared by the module.

The registry tests run on both backends ([sqlite] / [server] in their ids: `-k server`
selects the server ones); pytest groups them by backend, so one server serves them all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlgate import evidence as ev
from mlgate.registry import (
    FileDigest,
    Ledger,
    LockBusy,
    Registry,
    RegistryError,
    files_digest,
)
from mlgate.registry.ledger import LAST_TAG, MAX_RECORD_CHARS
from tests.helpers import log_sklearn_model

ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    # What Registry.connect would set by default; set here so the module restores them.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Module-scoped fixtures run before conftest's per-test environment: set it here (before
    mlflow is imported), and work in a scratch directory so that nothing lands in the repo."""
    work = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ENV.items():
            mp.setenv(key, value)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.chdir(work)
        yield work


@pytest.fixture(scope="module")
def server_process(module_env: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A real `mlflow server` on 127.0.0.1 (sqlite backend, proxied artifacts), one for the
    module; stopped with all its workers at the end."""
    root = module_env / "server"
    root.mkdir()
    port = free_port()
    argv = [str(Path(sys.executable).parent / "mlflow"), "server"]
    argv += ["--backend-store-uri", f"sqlite:///{root}/mlflow.db"]
    argv += ["--artifacts-destination", str(root / "artifacts")]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    env = os.environ | ENV
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with (root / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc, f"http://127.0.0.1:{port}", root / "server.log"
    finally:
        # The workers share the server's process group (its own session): stop them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=2)  # a scratch server: no need to wait for a slow graceful stop
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module", autouse=True)
def _start_server_early(request: pytest.FixtureRequest) -> None:
    """The server takes ~12 s to start: start it before the sqlite tests, which run first."""
    if any("[server]" in item.nodeid for item in request.session.items):
        request.getfixturevalue("server_process")


@pytest.fixture(scope="module")
def server_uri(server_process: tuple[subprocess.Popen[bytes], str, Path]) -> str:
    proc, url, log = server_process
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("mlflow server did not answer /health within 90 s")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def sqlite_registry(module_env: Path) -> Registry:
    # The default location: sqlite:///<default_dir>/mlflow.db, the directory created.
    return Registry.connect(default_dir=module_env / "sqlite" / ".mlgate")


@pytest.fixture(scope="module", params=["sqlite", "server"])
def registry(request: pytest.FixtureRequest) -> Registry:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_registry")  # type: ignore[no-any-return]
    return Registry.connect(request.getfixturevalue("server_uri"))


@pytest.fixture(scope="module")
def experiment(registry: Registry, module_env: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(registry.uri, registry.uri)
    # Explicit artifact location for the sqlite store (MLflow's default is ./mlruns).
    location = None
    if registry.uri.startswith("sqlite"):
        location = (module_env / "sqlite" / "artifacts").as_uri()
    return str(client.create_experiment(unique("tests"), artifact_location=location))


@pytest.fixture(scope="module")
def model(registry: Registry, experiment: str) -> str:
    """A registered model whose version 1 is a real sklearn model logged with log_model."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    name = unique("tiny")
    fitted = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    with pytest.MonkeyPatch.context() as mp:
        # The fluent API reads the store from the environment.
        mp.setenv("MLFLOW_TRACKING_URI", registry.uri)
        assert mlflow.get_tracking_uri() == registry.uri
        with mlflow.start_run(experiment_id=experiment):
            version = log_sklearn_model(
                fitted, registered_model_name=name, pip_requirements=["scikit-learn"]
            )
    assert version == "1"
    return name


def new_version(registry: Registry, experiment: str, name: str, files: dict[str, bytes]) -> str:
    """Register a new version of model `name` made of exactly these files (run artifacts)."""
    import tempfile

    from mlflow import MlflowClient

    client = MlflowClient(registry.uri, registry.uri)
    run_id = client.create_run(experiment).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        for path, content in files.items():
            (Path(tmp) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / path).write_bytes(content)
        registry.log_artifacts(run_id, Path(tmp), "model")
    return str(client.create_model_version(name, f"runs:/{run_id}/model", run_id).version)


# -- connect ---------------------------------------------------------------------------------


def test_import_does_not_import_mlflow() -> None:
    code = "import sys, mlgate.registry; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_connect_defaults_to_sqlite_in_default_dir(
    sqlite_registry: Registry, module_env: Path
) -> None:
    directory = module_env / "sqlite" / ".mlgate"
    assert sqlite_registry.uri == f"sqlite:///{directory.as_posix()}/mlflow.db"
    assert (directory / "mlflow.db").is_file()


def test_connect_reads_mlflow_tracking_uri(
    sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_registry.uri)
    assert Registry.connect(default_dir=Path("unused")).uri == sqlite_registry.uri
    assert not Path("unused").exists()


def test_connect_to_a_closed_port_fails_quickly(module_env: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # bound, then closed: nothing listens
    started = time.monotonic()
    with pytest.raises(RegistryError, match=f"MLflow registry at {uri} is not reachable: ") as err:
        Registry.connect(uri)
    assert time.monotonic() - started < 15
    assert "\n" not in str(err.value)


def test_registry_messages_never_show_credentials(module_env: Path) -> None:
    port = free_port()
    uri = f"http://ci-bot:s3cr3t-pass@127.0.0.1:{port}/mlflow?access_token=tok123&team=ml"
    with pytest.raises(RegistryError) as err:
        Registry.connect(uri)
    message = str(err.value)
    assert message.startswith(
        f"MLflow registry at http://***@127.0.0.1:{port}/mlflow?access_token=***&team=ml "
        "is not reachable: "
    )
    for secret in ("ci-bot", "s3cr3t", "tok123"):
        assert secret not in message
    # A stage that crashed on it records the crash without them too.
    crash = ev.crashed("quality", ev.now(), OSError(f"no route to {uri}"), None)
    assert (
        crash.reason is not None and "s3cr3t" not in crash.reason and "tok123" not in crash.reason
    )
    # Any stage's error reason: it may quote MLflow or `mlflow models serve` saying the URI.
    failed = ev.Evidence.model_validate(crash.model_dump() | {"reason": f"serve: {uri} refused"})
    assert failed.reason == (
        f"serve: http://***@127.0.0.1:{port}/mlflow?access_token=***&team=ml refused"
    )


def test_the_cli_never_prints_the_tracking_uris_credentials(tmp_path: Path) -> None:
    import mlgate

    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\npromotion:\n  model: iris\n")
    uri = f"http://ci-bot:s3cr3t-pass@127.0.0.1:{free_port()}/?token=tok123"
    result = subprocess.run(
        [sys.executable, "-m", "mlgate", "history", "--json"],
        cwd=tmp_path,
        # The mlgate this test imports (a worktree's src), not the one the venv installed.
        env=os.environ
        | {"MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(Path(mlgate.__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "is not reachable" in result.stderr, result.stderr
    for secret in ("ci-bot", "s3cr3t", "tok123"):
        assert secret not in result.stderr + result.stdout


def test_redact_credentials() -> None:
    from mlgate.redact import credentials

    assert credentials("https://u:p@w@host:1/x?token=a&b=c;sig=d#f") == (
        "https://***@host:1/x?token=***&b=c;sig=***#f"
    )
    assert credentials("sqlite:///tmp/mlflow.db at http://127.0.0.1:5000/") == (
        "sqlite:///tmp/mlflow.db at http://127.0.0.1:5000/"
    )
    assert credentials("databricks://profile@host and mail@example.com") == (
        "databricks://***@host and mail@example.com"
    )


# -- versions, aliases, tags -----------------------------------------------------------------


def test_model_version_known(registry: Registry, model: str) -> None:
    mv = registry.model_version(model, "1")
    assert (mv.name, mv.version, mv.status) == (model, "1", "READY")
    assert mv.run_id and mv.source
    assert mv.aliases == ()


def test_model_version_unknown_model_or_version(registry: Registry, model: str) -> None:
    with pytest.raises(RegistryError, match="registered model no-such-model does not exist"):
        registry.model_version("no-such-model", "1")
    with pytest.raises(RegistryError, match=f"model {model} version 99 does not exist") as err:
        registry.model_version(model, "99")
    assert "\n" not in str(err.value)


def test_alias_set_get_unset(registry: Registry, model: str) -> None:
    assert registry.alias(model, "staging") is None
    registry.set_alias(model, "staging", "1")
    assert registry.alias(model, "staging") == "1"
    assert registry.model_version(model, "1").aliases == ("staging",)
    registry.delete_alias(model, "staging")
    assert registry.alias(model, "staging") is None
    registry.delete_alias(model, "staging")  # already unset: no error
    with pytest.raises(RegistryError, match=f"model {model} version 42 does not exist"):
        registry.set_alias(model, "staging", "42")
    with pytest.raises(RegistryError, match="registered model nope does not exist"):
        registry.alias("nope", "staging")


def test_tags(registry: Registry, model: str) -> None:
    registry.set_model_tag(model, "mlgate.test", "a")
    registry.set_version_tag(model, "1", "mlgate.test.version", "b")
    assert registry.model_tags(model)["mlgate.test"] == "a"
    assert registry.model_version(model, "1").tags["mlgate.test.version"] == "b"
    with pytest.raises(RegistryError, match=f"model {model} version 77 does not exist"):
        registry.set_version_tag(model, "77", "k", "v")


# -- files and artifacts ---------------------------------------------------------------------


def test_model_files_and_digest(registry: Registry, model: str, experiment: str) -> None:
    files = registry.model_files(model, "1")
    assert [f.path for f in files] == sorted(f.path for f in files)
    assert "MLmodel" in {f.path for f in files}
    assert all(len(f.sha256) == 64 and f.size > 0 for f in files)
    assert registry.model_files(model, "1") == files  # stable across downloads
    digest = registry.model_digest(model, "1")
    assert digest == files_digest(files)

    content = {"MLmodel": b"flavors: {}\n", "data/weights.bin": b"\x00\x01\x02"}
    a = new_version(registry, experiment, model, content)
    b = new_version(registry, experiment, model, content | {"data/weights.bin": b"\x00\x01\x03"})
    c = new_version(registry, experiment, model, content)
    files_a = registry.model_files(model, a)
    assert [(f.path, f.size) for f in files_a] == [("MLmodel", 12), ("data/weights.bin", 3)]
    digest_a = files_digest(files_a)
    assert digest_a != registry.model_digest(model, b)  # one byte changed
    assert digest_a == registry.model_digest(model, c)  # the same content, another version
    assert digest_a != digest
    with pytest.raises(RegistryError, match=f"model {model} version 99 does not exist"):
        registry.model_files(model, "99")


def test_loading_a_version_by_models_uri_leaves_its_digest_as_it_was(
    registry: Registry, model: str, module_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow writes registered_model_meta into a local store's version directory when the
    version is loaded or served by a models:/ URI (what the load stage's server does): the
    digest a bundle pins must not change with it."""
    import mlflow.artifacts

    before = registry.model_digest(model, "1")
    # As `mlflow models serve` finds the store: from the environment.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry.uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model}/1"))
    assert (local / "registered_model_meta").is_file()
    if registry.uri.startswith("sqlite"):  # the store's own directory was written to
        assert local.is_relative_to(module_env / "sqlite" / "artifacts")
        assert "registered_model_meta" in {f.path for f in registry.model_files(model, "1")}
    assert registry.model_digest(model, "1") == before


def test_files_digest_is_canonical() -> None:
    one = [FileDigest("b", "2" * 64, 1), FileDigest("a", "1" * 64, 5)]
    assert files_digest(one) == files_digest(list(reversed(one)))
    assert files_digest(one) == files_digest([FileDigest("a", "1" * 64, 9), one[0]])  # not size
    assert files_digest(one) != files_digest([FileDigest("a", "1" * 64, 5)])
    assert files_digest(one).startswith("sha256:")


def test_artifacts_round_trip(registry: Registry, experiment: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    run_id = MlflowClient(registry.uri, registry.uri).create_run(experiment).info.run_id
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.json").write_text('{"a": 1}')
    (source / "sub" / "b.txt").write_text("b")
    registry.log_artifacts(run_id, source, "bundle")
    local = registry.download_artifacts(run_id, "bundle", tmp_path / "out")
    assert local.is_dir() and local.is_relative_to(tmp_path / "out")
    assert (local / "a.json").read_text() == '{"a": 1}'
    assert (local / "sub" / "b.txt").read_text() == "b"


# -- the lock --------------------------------------------------------------------------------


def test_lock_busy_names_holder_then_released(registry: Registry) -> None:
    name = unique("locked")
    with registry.lock(name, "production", "ci run 1"):
        started = time.monotonic()
        message = busy(registry, name, "production", "ci run 2")
        assert message.startswith(f"the promotion lock for {name}@production is held by ci run 1 ")
        assert time.monotonic() - started < 5
        with registry.lock(name, "staging", "ci run 2"):  # another alias: another lock
            pass
    with registry.lock(name, "production", "ci run 2"):  # released: free again
        pass
    with pytest.raises(RegistryError, match="invalid alias"), registry.lock(name, "bad alias", "x"):
        pass


def busy(registry: Registry, name: str, alias: str, holder: str, **kwargs: float) -> str:
    """The LockBusy message `holder` gets for name@alias."""
    with pytest.raises(LockBusy) as err, registry.lock(name, alias, holder, **kwargs):
        pytest.fail(f"{holder} acquired a held lock")
    assert "\n" not in str(err.value)
    return str(err.value)


def test_lock_released_when_the_block_raises(registry: Registry) -> None:
    name = unique("raising")
    with pytest.raises(ValueError, match="boom"), registry.lock(name, "production", "a"):
        raise ValueError("boom")
    with registry.lock(name, "production", "b"):
        pass


def test_lock_wait_gets_it_when_released(registry: Registry) -> None:
    name = unique("waited")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with registry.lock(name, "production", "first"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        threading.Timer(0.5, release.set).start()
        started = time.monotonic()
        with registry.lock(name, "production", "second", wait_s=10):
            assert 0.3 < time.monotonic() - started < 8
            started = time.monotonic()
            message = busy(registry, name, "production", "third", wait_s=0.3)
            assert "held by second" in message and message.endswith("; waited 0.3 s")
            assert 0.25 < time.monotonic() - started < 3
    finally:
        release.set()
        holder.join()


def test_expired_lock_is_broken(registry: Registry) -> None:
    from mlflow import MlflowClient

    name = unique("expired")
    crashed = registry.lock(name, "production", "crashed ci")
    crashed.__enter__()  # and never leaves: its process died
    time.sleep(0.3)
    assert "held by crashed ci" in busy(registry, name, "production", "patient", ttl_s=60)
    with registry.lock(name, "production", "rescuer", ttl_s=0.2):
        # The stale lock was moved aside, not deleted: a tombstone says who broke whose lock.
        client = MlflowClient(registry.uri, registry.uri)
        tombs = [
            m
            for m in client.search_registered_models(
                filter_string=f"name LIKE 'mlgate-lock--{name}--production--.broken.%'"
            )
        ]
        assert len(tombs) == 1
        assert tombs[0].tags["mlgate.lock.holder"] == "crashed ci"
        assert tombs[0].tags["mlgate.lock.broken_by"] == "rescuer"
        # The crashed holder comes back after all: its release must leave our lock alone.
        crashed.__exit__(None, None, None)
        assert "held by rescuer" in busy(registry, name, "production", "third")


def test_ten_threads_one_winner(registry: Registry) -> None:
    name = unique("race")
    barrier = threading.Barrier(10)
    release = threading.Event()
    results: queue.Queue[tuple[str, str]] = queue.Queue()
    # Each contender its own Registry (client), as separate CI jobs would have.
    registries = [Registry.connect(registry.uri) for _ in range(10)]

    def contend(i: int) -> None:
        try:
            barrier.wait(20)
            with registries[i].lock(name, "production", f"thread {i}"):
                results.put(("won", f"thread {i}"))
                release.wait(30)
        except LockBusy as exc:
            results.put(("busy", str(exc)))
        except Exception as exc:
            results.put(("error", repr(exc)))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    try:
        outcomes = [results.get(timeout=30) for _ in range(10)]
    finally:
        release.set()
        for t in threads:
            t.join(30)
    check_one_winner(outcomes)


def _contend_in_process(
    uri: str, name: str, i: int, barrier: Any, release: Any, results: Any
) -> None:
    try:
        registry = Registry.connect(uri)
        barrier.wait(30)
        with registry.lock(name, "production", f"process {i}"):
            results.put(("won", f"process {i}"))
            release.wait(30)
    except LockBusy as exc:
        results.put(("busy", str(exc)))
    except Exception as exc:
        results.put(("error", repr(exc)))


def test_ten_processes_one_winner_on_server(server_uri: str) -> None:
    # fork: ten children start at once with mlflow already imported; over HTTP they share
    # nothing (MLflow keys its sessions by pid). Not for sqlite, whose engine a forked child
    # would share with the parent: the threads above cover that store.
    ctx = multiprocessing.get_context("fork")
    name = unique("race")
    barrier, release, results = ctx.Barrier(10), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_contend_in_process, args=(server_uri, name, i, barrier, release, results)
        )
        for i in range(10)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=40) for _ in range(10)]
    finally:
        release.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    check_one_winner(outcomes)
    assert all(p.exitcode == 0 for p in procs)


def check_one_winner(outcomes: list[tuple[str, str]]) -> None:
    errors = [o for o in outcomes if o[0] == "error"]
    assert not errors, errors
    winners = [who for kind, who in outcomes if kind == "won"]
    assert len(winners) == 1, outcomes
    busy = [message for kind, message in outcomes if kind == "busy"]
    assert len(busy) == 9
    assert all(f"is held by {winners[0]} since" in message for message in busy), busy


# -- the ledger ------------------------------------------------------------------------------


def test_ledger_append_and_records(registry: Registry, model: str, tmp_path: Path) -> None:
    ledger = Ledger(registry, model)
    before = len(ledger.records())
    records = [
        {"kind": "promotion", "stage": "staging", "from_version": None, "to_version": "1"},
        {"kind": "promotion", "stage": "production", "to_version": "1", "by": "ci"},
        {"kind": "note", "text": "no version here"},
    ]
    seqs = [ledger.append(r) for r in records]
    assert seqs == [before + 1, before + 2, before + 3]
    assert unchained(ledger.records()[before:]) == records
    assert unchained(Ledger(registry, model).records()[before:]) == records  # a fresh reader
    last = json.loads(registry.model_version(model, "1").tags[LAST_TAG])
    assert last == {"seq": before + 2, "record": ledger.records()[before + 1]}

    # The copy: the whole ledger as JSON lines in the model's run of experiment mlgate-ledger.
    from mlflow import MlflowClient

    client = MlflowClient(registry.uri, registry.uri)
    experiment = client.get_experiment_by_name("mlgate-ledger")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlgate.ledger.model` = '{model}'")
    assert len(runs) == 1
    local = registry.download_artifacts(runs[0].info.run_id, f"ledger/{model}.jsonl", tmp_path)
    lines = local.read_text().splitlines()
    assert [json.loads(line) for line in lines] == ledger.records()
    if registry.uri.startswith("sqlite"):  # next to the database, not in ./mlruns
        assert str(Path(registry.uri[len("sqlite:///") :]).parent) in experiment.artifact_location


def test_ledger_refuses_to_overwrite(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique("ledger")
    registry_client_model(registry, name)
    ledger = Ledger(registry, name)
    ledger.append({"n": 1})
    ledger.append({"n": 2})
    # A writer whose view is stale (as if it raced another) would pick key 2 again.
    stale = ledger.read()
    stale.records = stale.records[:1]
    monkeypatch.setattr(Ledger, "read", lambda self: stale)
    with pytest.raises(
        RegistryError, match=r"record 2 of .* already exists; refusing to overwrite"
    ):
        ledger.append({"n": "overwrite"})
    monkeypatch.undo()
    assert unchained(ledger.records()) == [{"n": 1}, {"n": 2}]


def test_ledger_detects_gap_and_garbage(registry: Registry) -> None:
    name = unique("ledger")
    registry_client_model(registry, name)
    ledger = Ledger(registry, name)
    for n in range(3):
        ledger.append({"n": n})
    registry.set_model_tag(name, "mlgate.ledger.000005", '{"n": 5}')
    with pytest.raises(RegistryError, match="has a gap: record 4 is missing") as err:
        ledger.records()
    assert "\n" not in str(err.value)
    with pytest.raises(RegistryError, match="has a gap"):  # and no append on top of it
        ledger.append({"n": 6})
    registry.set_model_tag(name, "mlgate.ledger.000004", "not json")
    with pytest.raises(RegistryError, match=r"record 4 of .* is not a JSON object"):
        ledger.records()


def test_ledger_rejects_oversized_and_non_json_records(registry: Registry) -> None:
    name = unique("ledger")
    registry_client_model(registry, name)
    ledger = Ledger(registry, name)
    with pytest.raises(RegistryError, match=f"at most {MAX_RECORD_CHARS}"):
        ledger.append({"blob": "x" * MAX_RECORD_CHARS})
    with pytest.raises(RegistryError, match="not plain JSON"):
        ledger.append({"when": object()})
    assert ledger.records() == []


def test_ledger_concurrent_appends_keep_every_record(registry: Registry) -> None:
    # Two promotions of one model to different aliases hold different locks: the ledger
    # serializes its own appends.
    name = unique("ledger")
    registry_client_model(registry, name)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def append(i: int) -> None:
        try:
            ledger = Ledger(Registry.connect(registry.uri), name)
            barrier.wait(20)
            ledger.append({"writer": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(r["writer"] for r in Ledger(registry, name).records()) == [0, 1, 2, 3]


def _rewrite(registry: Registry, name: str, seq: int, **changes: Any) -> None:
    """Edit a stored record as someone with write access to the registry could."""
    key = f"mlgate.ledger.{seq:06d}"
    record = json.loads(registry.model_tags(name)[key]) | changes
    registry.set_model_tag(name, key, json.dumps(record, sort_keys=True, separators=(",", ":")))


def test_ledger_chain_reports_an_edited_record(registry: Registry) -> None:
    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    name = unique("chain")
    registry_client_model(registry, name)
    ledger = Ledger(registry, name)
    for actor in ("alice", "bob", "carol"):
        ledger.append({"kind": "promotion", "actor": actor, "reason": "ok"})
    # Rewriting record 2's actor and reason (its link left as it was) breaks record 3's link.
    _rewrite(registry, name, 2, actor="mallory", reason="routine")
    with pytest.raises(RegistryError, match=r"broken at record 3: .*record 2 was edited") as err:
        ledger.records()
    assert "\n" not in str(err.value)
    _rewrite(registry, name, 2, actor="bob", reason="ok")  # put back byte for byte: whole again
    records = ledger.records()
    tags = registry.model_tags(name)
    assert records[0]["prev"] == "sha256:" + "0" * 64  # the genesis value
    assert records[1]["prev"] == digest(tags["mlgate.ledger.000001"])
    assert records[2]["prev"] == digest(tags["mlgate.ledger.000002"])
    _rewrite(registry, name, 2, actor="mallory", reason="routine")
    report = ledger.read()  # what history shows: every record, the break marked
    assert [b.seq for b in report.breaks] == [3]
    assert report.records[1]["actor"] == "mallory"
    with pytest.raises(RegistryError, match="broken"):  # no append on a broken chain
        ledger.append({"kind": "promotion", "actor": "dave"})
    assert len(registry.model_tags(name)) == len(tags)


def test_ledger_chain_reports_an_edited_last_record_and_a_removed_one(registry: Registry) -> None:
    from mlflow import MlflowClient

    from mlgate.registry.ledger_chain import LedgerBroken

    name = unique("chain")
    registry_client_model(registry, name)
    ledger = Ledger(registry, name)
    ledger.append({"actor": "alice"})
    ledger.append({"actor": "bob"})
    _rewrite(registry, name, 2, actor="mallory")  # no record after it: the head catches it
    with pytest.raises(LedgerBroken, match="record 2: it does not match the head"):
        ledger.records()
    _rewrite(registry, name, 2, actor="bob")  # put back byte for byte: whole again
    assert [r["actor"] for r in ledger.records()] == ["alice", "bob"]
    MlflowClient(registry.uri, registry.uri).delete_registered_model_tag(
        name, "mlgate.ledger.000002"
    )  # the last record removed: no gap, but the head names it
    with pytest.raises(LedgerBroken, match="the head names record 2, but the ledger ends at 1"):
        ledger.records()


def test_ledger_without_chain_is_a_legacy_prefix(registry: Registry) -> None:
    from mlgate.registry.ledger_chain import LedgerBroken, digest

    name = unique("chain")
    registry_client_model(registry, name)
    # Written by an mlgate before the chain: no links, no head.
    for seq, actor in ((1, "alice"), (2, "bob")):
        text = json.dumps({"actor": actor}, separators=(",", ":"))
        registry.set_model_tag(name, f"mlgate.ledger.{seq:06d}", text)
    ledger = Ledger(registry, name)
    report = ledger.read()
    assert (report.legacy, report.breaks) == (2, [])
    ledger.append({"actor": "carol"})  # the chain starts here, linked to the last legacy one
    records = ledger.records()
    assert records[2]["prev"] == digest(registry.model_tags(name)["mlgate.ledger.000002"])
    _rewrite(registry, name, 2, actor="mallory")
    with pytest.raises(LedgerBroken, match="record 3"):
        ledger.records()


def unchained(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without the chain's link (ledger_chain)."""
    return [{k: v for k, v in r.items() if k != "prev"} for r in records]


def registry_client_model(registry: Registry, name: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(registry.uri, registry.uri).create_registered_model(name)
