"""Login throttling: failure budgets, doubling waits and password-check slots."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from static_gate.stores.memory import MemoryStore
from static_gate.throttle import (
    CHECK_NICENESS,
    MAX_BLOCK,
    CheckBusy,
    CheckSlots,
    Throttle,
    ThrottleConfig,
    throttle_keys,
    user_key,
)

T = 1_800_000_000.0
WINDOW = 60
ALICE = ("user:alice", "addr:192.0.2.1")
BOB = ("user:bob", "addr:192.0.2.2")


@pytest.fixture
def throttle() -> Throttle:
    return Throttle(MemoryStore(), ThrottleConfig(max_failures=3, window=WINDOW))


def fail(throttle: Throttle, keys: tuple[str, ...], times: int, now: float) -> None:
    for _ in range(times):
        throttle.add_failure(keys, now)


def test_no_wait_below_the_budget(throttle: Throttle) -> None:
    assert throttle.retry_after(ALICE, T) is None
    fail(throttle, ALICE, 2, T)

    assert throttle.retry_after(ALICE, T) is None


def test_at_the_budget_the_wait_lasts_until_the_reset(throttle: Throttle) -> None:
    fail(throttle, ALICE, 3, T)

    assert throttle.retry_after(ALICE, T) == WINDOW
    assert throttle.retry_after(ALICE, T + 10) == WINDOW - 10
    assert throttle.retry_after(ALICE, T + 59.5) == 1


def test_the_budget_is_back_after_the_window(throttle: Throttle) -> None:
    fail(throttle, ALICE, 3, T)

    assert throttle.retry_after(ALICE, T + WINDOW) is None
    throttle.add_failure(ALICE, T + WINDOW)
    assert throttle.retry_after(ALICE, T + WINDOW) is None


def test_each_refused_attempt_doubles_the_wait(throttle: Throttle) -> None:
    fail(throttle, ALICE, 3, T)
    later = T + 30
    waits = []
    for _ in range(5):
        throttle.add_failure(ALICE, later)
        waits.append(throttle.retry_after(ALICE, later))

    assert waits == [WINDOW, 2 * WINDOW, 4 * WINDOW, 8 * WINDOW, 16 * WINDOW]


def test_the_wait_is_capped_at_a_day() -> None:
    throttle = Throttle(MemoryStore(), ThrottleConfig(max_failures=3, window=3600))

    fail(throttle, ALICE, 3 + 40, T)

    assert MAX_BLOCK == 24 * 3600
    assert throttle.retry_after(ALICE, T) == MAX_BLOCK
    assert throttle.retry_after(ALICE, T + MAX_BLOCK) is None


def test_any_key_over_budget_throttles(throttle: Throttle) -> None:
    """A guesser who changes user names is stopped by the address key."""
    for name in ("alice", "bob", "carol"):
        throttle.add_failure(throttle_keys(name, "192.0.2.1"), T)

    assert throttle.retry_after(throttle_keys("dave", "192.0.2.1"), T) == WINDOW
    assert throttle.retry_after(throttle_keys("dave", "192.0.2.9"), T) is None


def test_separate_keys_have_separate_budgets(throttle: Throttle) -> None:
    fail(throttle, ALICE, 3, T)

    assert throttle.retry_after(ALICE, T) == WINDOW
    assert throttle.retry_after(BOB, T) is None


def test_clear_forgets_one_key(throttle: Throttle) -> None:
    fail(throttle, ALICE, 3, T)

    throttle.clear("user:alice")

    assert throttle.retry_after(("user:alice", "addr:192.0.2.9"), T) is None
    assert throttle.retry_after(("user:carol", "addr:192.0.2.1"), T) == WINDOW


@pytest.mark.parametrize("name", ["alice", "Alice", "ALICE", "aLiCe"])
def test_user_names_are_lower_cased(name: str) -> None:
    assert throttle_keys(name, "192.0.2.1") == ("user:alice", "addr:192.0.2.1")
    assert user_key(name) == "user:alice"


def test_defaults() -> None:
    assert ThrottleConfig() == ThrottleConfig(
        max_failures=5, window=15 * 60, concurrent_checks=1, check_wait=2
    )


# -- check slots --------------------------------------------------------------


def hold_slots(
    slots: CheckSlots, count: int
) -> tuple[list[threading.Thread], threading.Event]:
    """Have *count* threads take a slot each and keep it until told."""
    done = threading.Event()
    taken = threading.Barrier(count + 1, timeout=10)

    def hold() -> None:
        assert slots.acquire()
        try:
            taken.wait()
            done.wait(10)
        finally:
            slots.release()

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    taken.wait()
    return threads, done


def finish(threads: list[threading.Thread], done: threading.Event) -> None:
    done.set()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_check_slots_allow_at_most_size_at_once() -> None:
    slots = CheckSlots(2, wait=0.05)
    threads, done = hold_slots(slots, 2)
    try:
        assert slots.acquire() is False
    finally:
        finish(threads, done)

    assert slots.acquire() is True
    slots.release()


def test_a_freed_slot_goes_to_a_waiting_caller() -> None:
    slots = CheckSlots(1, wait=10)
    threads, done = hold_slots(slots, 1)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire()))
    waiter.start()

    finish(threads, done)
    waiter.join(timeout=10)

    assert got == [True]
    slots.release()


def test_check_slots_cannot_be_released_more_than_taken() -> None:
    slots = CheckSlots(1, wait=0.05)

    with pytest.raises(ValueError):
        slots.release()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")
def test_checks_run_at_lower_priority_than_readers() -> None:
    """A flood of sign-ins gets only the CPU that readers leave."""

    def own_niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    slots = CheckSlots(1, wait=1)

    assert slots.run(own_niceness) == min(19, own_niceness() + CHECK_NICENESS)


def test_busy_slots_refuse_to_run() -> None:
    slots = CheckSlots(1, wait=0.05)
    assert slots.acquire()

    with pytest.raises(CheckBusy):
        slots.run(lambda: None)

    slots.release()
    assert slots.run(lambda: 42) == 42


def test_no_more_callers_wait_than_slots_run() -> None:
    """Waiting sign-ins hold server threads: readers need the others."""
    slots = CheckSlots(1, wait=10)
    assert slots.acquire()
    waiter_got: list[bool] = []
    waiter = threading.Thread(target=lambda: waiter_got.append(slots.acquire()))
    waiter.start()
    deadline = time.monotonic() + 5
    while slots._waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)

    turned_away = slots.acquire()  # a third caller, with a slot busy and a waiter

    slots.release()
    waiter.join(timeout=5)
    assert turned_away is False
    assert waiter_got == [True]
