"""How the frame writers of one recording share the ring: their words and the stripe.

Each writer process (one per volume) is a lossless consumer of the frame ring
(consumer ``k`` for volume ``k``) and keeps its telemetry in the ring's user
words (:class:`Words`); nothing else passes between the processes.

The stripe says which volume writes frame ``seq`` (the ring's sequence number,
which is also the frame's index in the recording). Chunk ``c = seq //
frames_per_chunk`` has a fixed preference list of volumes: its home ``c %
n`` first, then the others in an order that rotates with ``c``; its frame goes
to the first volume on the list that is alive at ``seq``. When a volume fails,
the supervisor records from which frame on it is dead (the first frame its
writer had not saved): that moves only the frames that volume would have
written, spread over the survivors, and nothing else. Each survivor, on seeing
the death, writes the moved frames it now owns that it had already passed:
they are still in the ring, because the dead writer's consumer holds them until
every survivor has acknowledged the death; then the supervisor detaches it.
"""

from __future__ import annotations

import numpy as np

from mmmelab.storage.ringbuffer import MAX_CONSUMERS, N_USER

MAX_VOLUMES = MAX_CONSUMERS - 1  # one more consumer: the preview
ALIVE = 1 << 62  # the death frame of a volume that is alive

# ring user words shared by all writers
G_PREVIEWS, G_DEATHS = 0, 1  # previews rendered; deaths published
G_DEATH_SEQ = 2  # per volume: the first frame it no longer writes (ALIVE)
G_DEATH_ORDER = G_DEATH_SEQ + MAX_VOLUMES  # the volumes in the order they died
W_BASE, W_SIZE = 32, 16
# each writer's block of words
(
    W_FRAMES, W_BYTES, W_BUSY_NS, W_ERROR, W_READY, W_DIRECT, W_DONE, W_ACK,
) = range(8)  # fmt: skip
assert W_BASE + W_SIZE * MAX_VOLUMES <= N_USER and G_DEATH_ORDER + MAX_VOLUMES <= W_BASE


class Words:
    """Writer ``k``'s words in the ring (``ring.user``, int64, shared by processes)."""

    def __init__(self, user: np.ndarray, k: int) -> None:
        self.user = user
        self.k = k
        self.base = W_BASE + W_SIZE * k

    def __getitem__(self, field: int) -> int:
        return int(self.user[self.base + field])

    def __setitem__(self, field: int, value: int) -> None:
        self.user[self.base + field] = value

    def add(self, field: int, value: int) -> None:
        self.user[self.base + field] += value


class Stripe:
    """The ownership of frames among ``n`` volumes, read from (and set in) the ring words."""

    def __init__(self, user: np.ndarray, n: int, per_chunk: int) -> None:
        if not 1 <= n <= MAX_VOLUMES:
            raise ValueError(f"1 to {MAX_VOLUMES} volumes")
        self.user = user
        self.n = n
        self.per_chunk = per_chunk
        self._prefs: dict[int, tuple[int, ...]] = {}

    def start(self) -> None:
        """Every volume alive (the ring's creator calls it, before any writer starts)."""
        self.user[G_DEATH_SEQ : G_DEATH_SEQ + MAX_VOLUMES] = ALIVE
        self.user[G_DEATHS] = 0

    @property
    def deaths(self) -> int:
        return int(self.user[G_DEATHS])

    def died(self, d: int) -> tuple[int, int]:
        """(volume, first frame it no longer writes) of the ``d``-th death."""
        k = int(self.user[G_DEATH_ORDER + d])
        return k, int(self.user[G_DEATH_SEQ + k])

    def death_seq(self, k: int) -> int:
        return int(self.user[G_DEATH_SEQ + k])

    def alive(self, k: int) -> bool:
        return self.death_seq(k) == ALIVE

    def alive_volumes(self) -> list[int]:
        return [k for k in range(self.n) if self.alive(k)]

    def drop(self, k: int, from_seq: int) -> None:
        """Volume ``k`` writes no frame from ``from_seq`` on (supervisor only)."""
        d = self.deaths
        self.user[G_DEATH_SEQ + k] = from_seq
        self.user[G_DEATH_ORDER + d] = k
        self.user[G_DEATHS] = d + 1  # published last: a reader sees the whole death

    def prefs(self, chunk: int) -> tuple[int, ...]:
        """Chunk ``chunk``'s volumes in order of preference."""
        pref = self._prefs.get(chunk % (self.n * max(1, self.n - 1)))
        if pref is None:
            home = chunk % self.n
            others = [v for v in range(self.n) if v != home]
            r = (chunk // self.n) % max(1, len(others))
            pref = (home, *others[r:], *others[:r])
            self._prefs[chunk % (self.n * max(1, self.n - 1))] = pref
        return pref

    def owner(self, seq: int, ignore: int = -1) -> int:
        """The volume that writes frame ``seq`` (-1: none is left); ``ignore``: as if that
        volume had not died (who owned the frame before its death)."""
        for v in self.prefs(seq // self.per_chunk):
            if v == ignore or seq < self.death_seq(v):
                return v
        return -1

    def run_end(self, seq: int) -> int:
        """The first frame after ``seq`` whose owner may differ: the end of its chunk or a
        death, whichever comes first."""
        end = (seq // self.per_chunk + 1) * self.per_chunk
        for v in range(self.n):
            d = self.death_seq(v)
            if seq < d < end:
                end = d
        return end
