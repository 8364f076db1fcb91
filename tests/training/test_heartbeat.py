"""Heartbeats and the setup wait over a real TCPStore (in this process, ranks as threads): who is blamed
for a failed collective, and how the ranks meet before training. The multi-process runs are in
tests/training/test_ddp.py and tests/pipeline/test_ddp_setup.py."""

from __future__ import annotations

import datetime
import os
import signal
import threading

import pytest
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from cleanfit.errors import TrainingError
from cleanfit.training import setup_wait
from cleanfit.training.heartbeat import EXITED, LOST, Beat, Heartbeat

INTERVAL = 0.05


@pytest.fixture
def store(monkeypatch):
    """The rendezvous store, as rank 0 of an ``env://`` group would host it."""
    server = dist.TCPStore("127.0.0.1", 0, None, True, timeout=datetime.timedelta(seconds=10), wait_for_workers=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(server.port))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    previous = signal.getsignal(signal.SIGTERM)  # a rank that stops with a failed setup ignores SIGTERM
    yield server
    signal.signal(signal.SIGTERM, previous)


def _ranks(n: int) -> list[Heartbeat]:
    return [Heartbeat(r, n, INTERVAL, store_timeout_s=10).start() for r in range(n)]


def test_the_rank_whose_beat_stands_still_is_blamed_and_a_survivor_is_not(store):
    beats = _ranks(3)
    try:
        beats[2]._stop.set()  # as SIGKILL or SIGSTOP would: its thread writes no more
        beats[2]._thread.join()
        beats[1].state = LOST  # rank 1 noticed too: it is a survivor, not the lost one
        gone = beats[0].blame()
        assert [(rank, what) for _, rank, what in gone] == [(2, "stopped responding")]
        assert gone[0][0].pid == os.getpid()  # (every "rank" here is this process)
    finally:
        for b in beats:
            b.stop()


def test_a_rank_that_exited_is_named_as_exited_and_moving_ranks_are_not_blamed(store):
    beats = _ranks(3)
    try:
        beats[1].step = 7
        beats[1].stop()  # the process ended (atexit): "exited"
        gone = beats[0].blame()
        assert [(rank, what, beat.state, beat.step) for beat, rank, what in gone] == [(1, "exited", EXITED, 7)]
    finally:
        for b in beats:
            b.stop()


def test_ranks_meet_when_all_are_ready_and_a_published_failure_reaches_the_others(store):
    beats = _ranks(2)
    try:
        outcomes: list[str] = []
        late = threading.Thread(target=lambda: outcomes.append(
            setup_wait.meet(beats[1], 1, limit_s=30, stale_s=30)))
        late.start()
        assert setup_wait.meet(beats[0], 1, limit_s=30, stale_s=30) == "ok"
        late.join()
        assert outcomes == ["ok"]
        # phase 2: rank 0's setup fails; rank 1, waiting, gets its message, and rank 0 returns once it has
        waiter = threading.Thread(target=lambda: outcomes.append(setup_wait.meet(beats[1], 2, limit_s=30, stale_s=30)))
        waiter.start()
        setup_wait.publish(beats[0], 2, "rank 0 could not set up the run: no room", wait_s=30)
        waiter.join()
        assert outcomes[-1] == "rank 0 could not set up the run: no room"
        assert store.check(["cleanfit/0/setup/2/seen"])  # rank 0 left only after rank 1 read it
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # stopping: it says why before any SIGTERM
    finally:
        for b in beats:
            b.stop()


def test_a_rank_that_stops_during_the_setup_wait_ends_it_with_its_name(store):
    beats = _ranks(2)
    try:
        beats[0]._stop.set()  # rank 0 stopped (its heartbeat with it) before it was ready
        beats[0]._thread.join()
        with pytest.raises(TrainingError, match=r"rank 1 of 2: rank 0 \(pid \d+ on .+\), which stopped responding "
                                                r"before training started"):
            setup_wait.meet(beats[1], 1, limit_s=30, stale_s=0.5)
    finally:
        for b in beats:
            b.stop()


@given(st.binary(max_size=200) | st.none())
def test_any_stored_value_parses_to_a_beat_or_none(raw):
    beat = Beat.parse(3, raw)
    assert beat is None or (beat.rank == 3 and isinstance(beat.host, str))
