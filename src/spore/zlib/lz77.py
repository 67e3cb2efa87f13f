"""The front half of DEFLATE: LZ77 match finding (RFC 1951 §4), zlib's way.

The input is turned into *tokens*, the symbols of a block before Huffman
coding: an int below 256 is a literal byte, ``(length << 16) | distance`` is a
match (length 3..258, distance 1..32768; the packed value is always >= 2^17,
so the two never collide).

The search follows zlib's deflate.c, so that compression ratios track it:

* Hash chains (§4 "compression method"): every position is linked to the
  previous position whose three bytes have the same hash, zlib's hash of
  ``memLevel + 7`` bits. Its collisions matter: they use up the chain limit,
  and a search that reaches further back (as exact 3-byte chains do) finds
  longer but more distant matches that cost more bits (2.4% more on
  kennedy.xls).
* Levels 1..3 take the longest match greedily (zlib's deflate_fast), and like
  zlib leave the inside of a match longer than max_lazy out of the chains;
  levels 4..9 defer each match by one byte and keep whichever is longer
  ("lazy matching", deflate_slow). The per-level limits (good/lazy/nice/chain)
  are zlib's configuration table.
* Z_FILTERED drops matches of up to 5 bytes, Z_RLE only looks at distance 1,
  Z_HUFFMAN_ONLY emits literals only.
* A block ends after ``2^(memLevel + 6) - 1`` symbols, as zlib's literal buffer
  fills.

At every level the token stream is zlib's own, block for block
(tests/zlib/test_deflate_tokens.py), so the compressed size is within bytes
of C zlib's and compress() returns output at the same calls
(tests/zlib/test_deflate_call_timing.py). One known departure: zlib loses a
position from its chains when its window slides over it, an effect only
reachable at exactly the maximum distance.

Speed in pure Python: every position of a chunk is hashed in one tight loop
up front, so the match loop skips the positions a match covers instead of
visiting them; each hash chain is a sorted list of positions, so the stretch
zlib would walk is one bisect and one slice; most candidates fail a one-byte
test; and a match is measured with one big-int XOR instead of a byte loop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass

from .constants import Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE

MIN_MATCH = 3
MAX_MATCH = 258
# zlib keeps this much input ahead of the match position except when flushing,
# so that no match is cut short by where the caller happened to split the input.
MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1
# A 3-byte match further back than this costs more bits than three literals.
TOO_FAR = 4096


@dataclass(frozen=True)
class LevelConfig:
    """One row of zlib's configuration table."""

    good_length: int  # once the previous match is this long, search a quarter of the chain
    max_lazy: int  # levels 4..9: do not look for a better match once this long
    nice_length: int  # stop searching once a match is this long
    max_chain: int  # examine at most this many chain entries
    lazy: bool  # levels 4..9 match lazily (deflate_slow), 1..3 greedily (deflate_fast)


CONFIGURATION_TABLE = {
    1: LevelConfig(4, 4, 8, 4, lazy=False),
    2: LevelConfig(4, 5, 16, 8, lazy=False),
    3: LevelConfig(4, 6, 32, 32, lazy=False),
    4: LevelConfig(4, 4, 16, 16, lazy=True),
    5: LevelConfig(8, 16, 32, 32, lazy=True),
    6: LevelConfig(8, 16, 128, 128, lazy=True),
    7: LevelConfig(8, 32, 128, 256, lazy=True),
    8: LevelConfig(32, 128, 258, 1024, lazy=True),
    9: LevelConfig(32, 258, 258, 4096, lazy=True),
}


def match_token(length: int, distance: int) -> int:
    return (length << 16) | distance


def longest_match(
    data: bytearray,
    base: int,
    pos: int,
    candidates: list[int],
    best_len: int,
    best_start: int,
    max_len: int,
    nice_length: int,
) -> tuple[int, int]:
    """zlib's chain search: the longest match at ``pos`` among ``candidates``, if longer than ``best_len``.

    ``candidates`` are the absolute positions (``index + base``) on ``pos``'s
    hash chain that zlib would visit, nearest first. Like zlib we keep a
    candidate only if it is strictly longer than the best so far, so equal
    lengths go to the nearest; we stop at ``nice_length`` (or ``max_len``, the
    most that fits before the end of the input); and when nothing
    beats ``best_len`` (the previous match's length, in lazy matching),
    ``(best_len, best_start)`` comes back unchanged.
    """
    if best_len >= max_len:
        return best_len, best_start
    if nice_length > max_len:
        nice_length = max_len  # zlib: nice_match never beyond the lookahead
    # A longer match must agree with pos at offset best_len (zlib's scan_end
    # test) and at offset 1, then on its whole first best_len + 1 bytes (one
    # C-level compare). Candidates rarely get that far: build what the later
    # tests need only when one does.
    scan_end = data[pos + best_len]
    offset = best_len - base
    second = data[pos + 1]
    needle = target = None
    for candidate in candidates:
        if data[candidate + offset] != scan_end:
            continue
        start = candidate - base
        if data[start + 1] != second:
            continue
        if needle is None:
            needle = data[pos : pos + best_len + 1]
        if not data.startswith(needle, start):
            continue
        if target is None:
            target = int.from_bytes(data[pos : pos + max_len], "little")
        # The first byte that differs holds the lowest set bit of the XOR.
        diff = target ^ int.from_bytes(data[start : start + max_len], "little")
        best_len = ((diff & -diff).bit_length() - 1) >> 3 if diff else max_len
        best_start = start
        if best_len >= nice_length:
            break
        scan_end = data[pos + best_len]
        offset = best_len - base
        needle = None
    return best_len, best_start


class Lz77:
    """The sliding window, its hash chains, and the current block's tokens.

    Positions in the match loops are indices into ``data``, which holds up to
    a window of history followed by the input not yet matched. The hash
    chains are kept as one ascending list per hash value, ``chains[h]``, of
    *absolute* positions (``index + base``), so that the ``k``-th link back
    from any entry is a list index away and sliding the window needs no
    rewriting of stored positions. ``keys[i]`` is the hash of position ``i``.
    """

    def __init__(self, level: int, strategy: int, wbits: int, mem_level: int) -> None:
        self.config = CONFIGURATION_TABLE[level]
        self.strategy = strategy
        self.window_size = 1 << wbits
        self.max_distance = self.window_size - MIN_LOOKAHEAD
        self.block_symbols = (1 << (mem_level + 6)) - 1  # zlib: lit_bufsize - 1
        # zlib's hash of three bytes: memLevel + 7 bits, each byte shifted in by a third.
        hash_bits = mem_level + 7
        self.hash_shift = (hash_bits + MIN_MATCH - 1) // MIN_MATCH
        self.hash_mask = (1 << hash_bits) - 1
        self.data = bytearray()
        self.base = 0  # absolute position of data[0]
        self.origin = 0  # absolute position zlib holds at window index 0 (see chain_candidates)
        self.keys: list[int] = []  # one per hashed position: len(keys) positions are hashed
        # Created as hashes occur: a stream (or a copy()) pays only for the chains it uses,
        # not for 2^(memLevel + 7) empty lists up front.
        self.chains: defaultdict[int, list[int]] = defaultdict(list)
        self.pos = 0  # the next position to match (zlib's strstart)
        self.block_start = 0  # first byte of the current block
        self.tokens: list[int] = []
        # Lazy-matching state carried between calls (deflate_slow).
        self.match_length = MIN_MATCH - 1
        self.match_start = 0
        self.match_available = False

    def copy(self) -> Lz77:
        twin = Lz77.__new__(Lz77)
        twin.__dict__.update(self.__dict__)
        twin.data = bytearray(self.data)
        twin.keys = list(self.keys)
        twin.chains = defaultdict(list, {key: list(chain) for key, chain in self.chains.items()})
        twin.tokens = list(self.tokens)
        return twin

    # --- input and history ---------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        self._hash_positions()

    def prime(self, dictionary: bytes) -> None:
        """Preset dictionary (RFC 1950 FDICT): history that matches may refer to."""
        self.feed(dictionary[-self.window_size :])
        self.pos = self.block_start = len(self.data)

    def _hash_positions(self) -> None:
        """Link every position that has three bytes after it into its chain."""
        data, keys, chains = self.data, self.keys, self.chains
        start, stop = len(keys), len(data) - (MIN_MATCH - 1)
        if stop <= start:
            return
        shift, mask = self.hash_shift, self.hash_mask
        key = ((data[start] << shift) ^ data[start + 1]) & mask
        for position, byte in enumerate(data[start + 2 : stop + 2], start + self.base):
            key = ((key << shift) ^ byte) & mask
            keys.append(key)
            chains[key].append(position)

    def chain_candidates(self, pos: int, max_chain: int) -> list[int]:
        """The absolute positions zlib's chain walk from ``pos`` visits, nearest first.

        zlib follows at most ``max_chain`` links, and only while a candidate
        is within max_distance; the nearest candidate itself is visited when
        within max_distance inclusive (deflate_slow's own test).
        """
        if pos >= len(self.keys):
            return []  # fewer than three bytes left: not hashed, as in zlib
        chain = self.chains[self.keys[pos]]
        apos = pos + self.base
        index = bisect_left(chain, apos)
        # zlib's window index 0 doubles as its "no position" (NIL), so the first
        # byte of a stream (or of a dictionary, or after a full flush) is never
        # a candidate and ends the chain; being the oldest, it can only be chain[0].
        oldest = 1 if chain and chain[0] == self.origin else 0
        if index <= oldest or apos - chain[index - 1] > self.max_distance:
            return []
        lowest = index - max_chain if index - max_chain > oldest else oldest
        if apos - chain[lowest] >= self.max_distance:
            lowest = bisect_left(chain, apos - self.max_distance + 1, lowest, index)
            if lowest == index:
                lowest -= 1  # only the nearest, at exactly max_distance
        return chain[index - 1 : lowest - 1 : -1] if lowest else chain[index - 1 :: -1]

    def slide(self) -> None:
        """Drop history that no match can reach and no pending block needs."""
        drop = min(self.pos - self.window_size, self.block_start)
        if drop < max(self.window_size, 1 << 16):
            return
        del self.data[:drop]
        del self.keys[:drop]
        self.base += drop
        for chain in self.chains.values():
            if chain and chain[0] < self.base:
                del chain[: bisect_left(chain, self.base)]
        self.pos -= drop
        self.block_start -= drop
        self.match_start -= drop

    def forget_history(self) -> None:
        """Z_FULL_FLUSH: later matches must not reach back before this point."""
        assert self.pos == len(self.data) and not self.tokens and not self.match_available
        self.base += len(self.data)
        self.origin = self.base
        self.data = bytearray()
        self.keys = []
        self.chains = defaultdict(list)
        self.pos = self.block_start = self.match_start = 0
        self.match_length = MIN_MATCH - 1

    # --- blocks --------------------------------------------------------------

    def take_block(self) -> tuple[list[int], bytes]:
        """The current block's tokens and the bytes they spell; starts the next block."""
        end = self.pos - self.match_available
        raw = bytes(self.data[self.block_start : end])
        tokens, self.tokens = self.tokens, []
        self.block_start = end
        return tokens, raw

    def end_input(self) -> None:
        """At a flush: emit the byte a lazy match was still waiting on."""
        if self.match_available:
            self.tokens.append(self.data[self.pos - 1])
            self.match_available = False
        self.match_length = MIN_MATCH - 1

    def find_matches(self, flushing: bool) -> bool:
        """Tokenize pending input; True when the block is full and must be emitted first.

        Without ``flushing``, input is left for the next call as zlib leaves it,
        which decides when blocks fill and so when compress() returns output:
        deflate_fast and deflate_slow go on while MIN_LOOKAHEAD bytes are
        ahead, deflate_rle while more than MAX_MATCH are, deflate_huff to
        the end.
        """
        end = len(self.data)
        if flushing or self.strategy == Z_HUFFMAN_ONLY:
            stop = end
        elif self.strategy == Z_RLE:
            stop = end - MAX_MATCH
        else:
            stop = end - MIN_LOOKAHEAD + 1
        if self.pos >= stop:
            return False
        if self.strategy == Z_HUFFMAN_ONLY:
            return self._huffman_only(stop)
        if self.strategy == Z_RLE:
            return self._rle(stop)
        if self.config.lazy:
            return self._lazy(stop)
        return self._greedy(stop)

    # --- the match loops -----------------------------------------------------

    def _huffman_only(self, stop: int) -> bool:
        """Z_HUFFMAN_ONLY: every byte a literal."""
        take = min(stop - self.pos, self.block_symbols - len(self.tokens))
        self.tokens.extend(self.data[self.pos : self.pos + take])
        self.pos += take
        return len(self.tokens) >= self.block_symbols

    def _rle(self, stop: int) -> bool:
        """Z_RLE: only matches at distance 1, i.e. runs of the previous byte."""
        data, tokens = self.data, self.tokens
        end = len(data)
        pos = self.pos
        room = self.block_symbols - len(tokens)
        while pos < stop and room:
            if pos and end - pos >= MIN_MATCH:
                byte = data[pos - 1]
                if data[pos] == byte and data[pos + 1] == byte and data[pos + 2] == byte:
                    run = data[pos : pos + min(MAX_MATCH, end - pos)]
                    length = len(run) - len(run.lstrip(bytes((byte,))))
                    tokens.append(match_token(length, 1))
                    pos += length
                    room -= 1
                    continue
            tokens.append(data[pos])
            pos += 1
            room -= 1
        self.pos = pos
        return not room

    def _greedy(self, stop: int) -> bool:
        """Levels 1..3 (zlib's deflate_fast): take the longest match at each position."""
        data, tokens, chain_candidates = self.data, self.tokens, self.chain_candidates
        base = self.base
        nice, max_chain = self.config.nice_length, self.config.max_chain
        max_insert = self.config.max_lazy  # deflate_fast's max_insert_length
        end = len(data)
        pos = self.pos
        room = self.block_symbols - len(tokens)
        while pos < stop and room:
            candidates = chain_candidates(pos, max_chain)
            if candidates:
                max_len = end - pos if end - pos < MAX_MATCH else MAX_MATCH
                length, start = longest_match(data, base, pos, candidates, MIN_MATCH - 1, 0, max_len, nice)
                if length >= MIN_MATCH:
                    tokens.append(match_token(length, pos - start))
                    if end - pos - length < MIN_MATCH:
                        # Flushing, the input ends within 2 bytes: zlib links none of
                        # the match but its last two positions (deflate's s->insert).
                        self._unlink(pos + 1, pos + length - 2)
                    elif length > max_insert:
                        self._unlink(pos + 1, pos + length)
                    pos += length
                    room -= 1
                    continue
            tokens.append(data[pos])
            pos += 1
            room -= 1
        self.pos = pos
        return not room

    def _unlink(self, first: int, stop: int) -> None:
        """Take positions first..stop-1 out of their hash chains (zlib never inserted them).

        All of a chain's entries in that range are consecutive in it, so each
        chain loses one slice.
        """
        stop = min(stop, len(self.keys))
        if stop <= first:
            return
        low, chains = first + self.base, self.chains
        for key, count in Counter(self.keys[first:stop]).items():
            chain = chains[key]
            start = bisect_left(chain, low)
            del chain[start : start + count]

    def _lazy(self, stop: int) -> bool:
        """Levels 4..9 (zlib's deflate_slow): emit a match only if the next byte has none longer.

        At each position we know the best match found one byte earlier
        (prev_length at prev_match). If this position's match is not longer,
        the earlier one is emitted; otherwise the earlier byte goes out as a
        literal and this match becomes the one waiting.
        """
        data, tokens, chain_candidates = self.data, self.tokens, self.chain_candidates
        base = self.base
        config = self.config
        max_lazy, good, nice = config.max_lazy, config.good_length, config.nice_length
        max_chain = config.max_chain
        filtered = self.strategy == Z_FILTERED
        end = len(data)
        pos = self.pos
        match_length, match_start = self.match_length, self.match_start
        match_available = self.match_available
        room = self.block_symbols - len(tokens)
        while pos < stop and room:
            prev_length, prev_match = match_length, match_start
            match_length = MIN_MATCH - 1
            if prev_length < max_lazy:
                candidates = chain_candidates(pos, max_chain >> 2 if prev_length >= good else max_chain)
                if candidates:
                    max_len = end - pos if end - pos < MAX_MATCH else MAX_MATCH
                    match_length, match_start = longest_match(
                        data, base, pos, candidates, prev_length, match_start, max_len, nice
                    )
                    if match_length <= 5 and (filtered or (match_length == MIN_MATCH and pos - match_start > TOO_FAR)):
                        match_length = MIN_MATCH - 1
            if prev_length >= MIN_MATCH and match_length <= prev_length:
                tokens.append(match_token(prev_length, pos - 1 - prev_match))
                pos += prev_length - 1
                match_available = False
                match_length = MIN_MATCH - 1
                room -= 1
            elif match_available:
                tokens.append(data[pos - 1])
                pos += 1
                room -= 1
            else:
                match_available = True
                pos += 1
        self.pos = pos
        self.match_length, self.match_start = match_length, match_start
        self.match_available = match_available
        return not room
