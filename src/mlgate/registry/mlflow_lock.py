"""The promotion lock, mixed into Registry: a registered model whose creation is an atomic insert
under a unique key, so of any number of concurrent takers exactly one holds it; waited for,
broken when its holder overran the TTL, released if still ours."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from mlgate.errors import MlgateError
from mlgate.registry.one_line import one_line

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

LOCK_PREFIX = "mlgate-lock--"
_LOCK_TAG = "mlgate.lock"
_HOLDER_TAG = "mlgate.lock.holder"
_SINCE_TAG = "mlgate.lock.acquired_at"
_NONCE_TAG = "mlgate.lock.nonce"
# MLflow's own rule for alias names; a lock name's alias part can therefore never contain a
# dot, which keeps mlgate's internal lock names (".ledger", ".broken.") apart from alias locks.
_ALIAS = re.compile(r"[\w-]+")
_POLL_S = 0.25


@dataclass(frozen=True)
class _LockState:
    holder: str
    since: float  # epoch seconds, as written by the holder
    nonce: str


class PromotionLocks:
    """The lock methods of Registry; `_failure` and `_busy` are the errors they raise."""

    _client: MlflowClient
    _failure: ClassVar[type[MlgateError]]  # the lock cannot be taken, read or released
    _busy: ClassVar[type[MlgateError]]  # someone else holds it

    @contextlib.contextmanager
    def lock(
        self, name: str, alias: str, holder: str, *, ttl_s: float = 900, wait_s: float = 0
    ) -> Iterator[None]:
        """Hold the promotion lock of name@alias for the duration of the block.

        The lock is a registered model named mlgate-lock--<name>--<alias>: creating a
        registered model is an INSERT under a unique key in MLflow's database, so of any
        number of concurrent creators exactly one succeeds, through the sqlite store as
        through a server (both answer RESOURCE_ALREADY_EXISTS to the others). Its tags say
        who holds it and since when; releasing deletes it, if it is still ours.
        """
        if not _ALIAS.fullmatch(alias):
            raise self._failure(f"invalid alias {alias!r} (letters, digits, _ and - only)")
        lock_name = f"{LOCK_PREFIX}{name}--{alias}"
        with self._lock(lock_name, f"promotion lock for {name}@{alias}", holder, ttl_s, wait_s):
            yield

    def ledger_lock(self, name: str, holder: str) -> contextlib.AbstractContextManager[None]:
        """The lock of `name`'s ledger, held while appending to it: promotions to different
        aliases of one model hold different locks but share its ledger. The lock name's alias
        part (".ledger") can never be an alias: no clash with them."""
        lock_name = f"{LOCK_PREFIX}{name}--.ledger"
        return self._lock(lock_name, f"ledger lock of {name}", holder, 120, 60)

    @contextlib.contextmanager
    def _lock(
        self, lock_name: str, what: str, holder: str, ttl_s: float, wait_s: float
    ) -> Iterator[None]:
        nonce = uuid.uuid4().hex  # this acquisition, not the holder: one holder may retry
        deadline = time.monotonic() + max(wait_s, 0.0)
        broken = False
        vanished = 0
        while True:
            state = self._try_create_lock(lock_name, what, holder, nonce)
            if state is None:
                break  # acquired
            if state is _FREE:
                # Released between our create and our read: free now, try again at once
                # (bounded, in case of endless churn).
                vanished += 1
                if vanished <= 10:
                    continue
                state = _LockState("(changing holders)", time.time(), "")
            if not broken and time.time() - state.since > ttl_s:
                broken = True  # once per call: a crashed holder's lock, not a queue of them
                self._break_lock(lock_name, state, holder)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                since = dt.datetime.fromtimestamp(state.since, dt.timezone.utc)
                raise self._busy(
                    f"the {what} is held by {state.holder} since "
                    f"{since.isoformat(timespec='seconds')} "
                    f"({max(time.time() - state.since, 0):.0f} s ago)"
                    + (f"; waited {wait_s:g} s" if wait_s > 0 else "")
                )
            time.sleep(min(remaining, _POLL_S + random.uniform(0, _POLL_S)))  # noqa: S311
        try:
            yield
        except BaseException:
            try:
                self._release_lock(lock_name, what, nonce)
            except self._failure as exc:
                # The block's own error matters more; an unreleased lock expires after ttl_s.
                log.warning("could not release the %s: %s", what, exc)
            raise
        self._release_lock(lock_name, what, nonce)

    def _try_create_lock(
        self, lock_name: str, what: str, holder: str, nonce: str
    ) -> _LockState | None:
        """None when we now hold the lock; otherwise who holds it (_FREE when nobody)."""
        from mlflow.exceptions import MlflowException

        tags = {
            _LOCK_TAG: what,
            _HOLDER_TAG: holder,
            _SINCE_TAG: dt.datetime.now(dt.timezone.utc).isoformat(),
            _NONCE_TAG: nonce,
        }
        try:
            # Tags are written in the same transaction (and the same request) as the model.
            self._client.create_registered_model(
                lock_name, tags=tags, description=f"mlgate {what}; deleted when released"
            )
        except MlflowException as exc:
            code = exc.error_code
            if code == "RESOURCE_ALREADY_EXISTS":
                state = self._lock_state(lock_name)
                # Ours when the HTTP client retried a create whose first attempt had committed.
                return None if state is not None and state.nonce == nonce else state or _FREE
            if code == "RESOURCE_DOES_NOT_EXIST":
                # The sqlite store re-reads the existing model after the failed INSERT; it
                # was deleted in between. Free now: try again.
                return _FREE
            # A store error (e.g. a 500 after the client's retries): the create may still have
            # committed, so ask before giving up.
            state = self._lock_state(lock_name)
            if state is not None and state.nonce == nonce:
                return None
            raise self._failure(f"cannot take the {what}: {one_line(exc)}") from None
        # Check that the lock really carries our nonce before trusting it.
        state = self._lock_state(lock_name)
        if state is None or state.nonce != nonce:
            raise self._failure(f"the {what} was taken over as it was created")
        return None

    def _lock_state(self, lock_name: str) -> _LockState | None:
        """Who holds the lock, None when nobody does."""
        from mlflow.exceptions import MlflowException

        for attempt in range(4):
            try:
                model = self._client.get_registered_model(lock_name)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return None
                raise self._failure(f"cannot read the lock {lock_name}: {one_line(exc)}") from None
            tags = dict(model.tags or {})
            if _NONCE_TAG in tags or attempt == 3:
                break
            # The store reads the model and its tags in two statements: a lock being deleted
            # (or created) meanwhile shows up without tags. Read again.
            time.sleep(0.05)
        try:
            since = dt.datetime.fromisoformat(tags[_SINCE_TAG]).timestamp()
        except (KeyError, ValueError):
            # Missing or edited tag: the store's creation time still dates the lock.
            since = (model.creation_timestamp or 0) / 1000
        return _LockState(tags.get(_HOLDER_TAG, "(unknown)"), since, tags.get(_NONCE_TAG, "?"))

    def _break_lock(self, lock_name: str, stale: _LockState, breaker: str) -> None:
        """Remove a lock older than its TTL (a crashed holder).

        Breakers race too (every waiter sees the lock expire at about the same time), and
        "delete if the nonce is still T" is not atomic in MLflow: a second breaker could
        delete the lock that the first breaker has just re-taken. So the stale lock is not
        deleted but renamed to a name made of its nonce: a rename is an UPDATE under the same
        unique key, so for one stale nonce only one rename can ever succeed (the tombstone
        stays, as a record of who broke which lock). Crash-safe: before the rename nothing
        changed, after it the lock name is free.

        Residual race: between reading the stale nonce and renaming, the stale holder (slow,
        not dead) may release and a new contender take the lock; the rename then moves the
        fresh lock. We detect that by the nonce the tombstone carries and rename it back; only
        if yet another contender took the free name in that instant do two holders remain, and
        that is reported as an error. Holding a lock longer than its TTL is what opens it.
        """
        from mlflow.exceptions import MlflowException

        tomb = f"{lock_name}--.broken.{stale.nonce}"
        try:
            self._client.rename_registered_model(lock_name, tomb)
        except MlflowException:
            return  # someone else broke (or the holder released) it: contend again
        moved = self._lock_state(tomb)
        if moved is None:
            return  # cannot happen short of someone deleting tombstones: contend again
        if moved.nonce == stale.nonce:
            log.warning("broke the expired promotion lock %s of %s", lock_name, stale.holder)
            with contextlib.suppress(MlflowException):
                self._client.set_registered_model_tag(tomb, "mlgate.lock.broken_by", breaker)
            return
        try:
            self._client.rename_registered_model(tomb, lock_name)
        except MlflowException as exc:
            raise self._failure(
                f"breaking the expired lock {lock_name} raced with its release; "
                f"check {tomb}: {one_line(exc)}"
            ) from None

    def _release_lock(self, lock_name: str, what: str, nonce: str) -> None:
        from mlflow.exceptions import MlflowException

        state = self._lock_state(lock_name)
        if state is None or state.nonce != nonce:
            # Broken while we held it (we overran the TTL): the lock is someone else's now.
            log.warning("the %s was broken while held", what)
            return
        # Residual race: if it is broken and re-taken between this read and the delete, we
        # delete the new holder's lock. Only a holder that overran its TTL can get here.
        try:
            self._client.delete_registered_model(lock_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise self._failure(
                    f"cannot release the lock {lock_name}: {one_line(exc)}"
                ) from None


_FREE = _LockState("", 0.0, "")
