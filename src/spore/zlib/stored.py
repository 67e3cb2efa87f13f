"""Level 0 as zlib writes it: deflate_stored, block for block and call for call.

At level 0 the stream is nothing but stored blocks (RFC 1951 §3.2.4), and C
zlib fixes their sizes by where its bytes can go (deflate.c, deflate_stored,
zlib 1.2.12+):

* Copy straight to the caller's output buffer as many stored blocks as fit,
  each as long as the input and the output room allow (at most 65535), but
  only blocks of at least ``min_block`` = min(pending_buf_size - 5, w_size)
  bytes -- unless flushing and the block takes all the input there is.
* What is left goes into the sliding window (2 * w_size bytes, slid down by
  w_size when full), and from there into the pending buffer as one stored
  block when at least min(pending room, w_size) bytes wait, or when flushing
  empties the input and it fits. Pending room is pending_buf_size (4 <<
  (memLevel + 6) bytes) less the block header, at most 65535: 65531 bytes
  for the default memLevel, 1019 for memLevel 1.

So the sizes depend on wbits, memLevel and on how much output room each
deflate() call has, which CPython sets: every zlib-module call hands deflate()
an output buffer of 32 KiB, then 64 KiB, 256 KiB, ... until a call leaves
room over (decompressor._output_blocks). ``StoredDeflate`` replays exactly
that, the zlib/gzip header and trailer included (they take output room too),
so both the bytes and the moment each byte is returned match C zlib's.
Checksums and the rules about repeated flushes stay in deflate.Compress.
"""

from __future__ import annotations

from .constants import Z_BLOCK, Z_FINISH, Z_FULL_FLUSH, Z_NO_FLUSH, Z_PARTIAL_FLUSH
from .decompressor import _BLOCK_SIZES, _output_blocks

MAX_STORED = 65535  # §3.2.4: LEN is 16 bits

# deflate_stored's answers (deflate.c's block_state)
NEED_MORE, BLOCK_DONE, FINISH_STARTED, FINISH_DONE = range(4)


class StoredDeflate:
    """zlib's deflate state at level 0: window, pending bytes and bits, for one stream."""

    def __init__(self, window_bits: int, mem_level: int, header: bytes, dictionary: bytes = b"") -> None:
        self.w_size = 1 << window_bits
        self.window_size = 2 * self.w_size
        self.pending_buf_size = 4 << (mem_level + 6)  # lit_bufsize * 4
        self.window = bytearray(self.window_size)
        tail = dictionary[-self.w_size :] if dictionary else b""
        self.window[: len(tail)] = tail  # deflateSetDictionary: the dictionary is history
        self.strstart = self.block_start = len(tail)
        self.header = header  # written at the first deflate() call (INIT_STATE)
        self.pending = bytearray()
        self.bit_buf = 0  # bits not yet making a whole byte (after Z_PARTIAL_FLUSH)
        self.bit_count = 0
        self.finishing = False  # FINISH_STATE: the last block has been started
        self.trailer_written = False
        # one zlib-module call's input and output
        self.data = memoryview(b"")
        self.next_in = 0
        self.out = bytearray()
        self.avail_out = 0

    def copy(self) -> StoredDeflate:
        twin = StoredDeflate.__new__(StoredDeflate)
        twin.__dict__.update(self.__dict__)
        twin.window = bytearray(self.window)
        twin.pending = bytearray(self.pending)
        return twin

    def call(self, data: memoryview, flush: int, trailer: bytes = b"") -> bytes:
        """One zlib-module call: deflate(flush) into CPython's growing output buffer.

        ``trailer`` is what Z_FINISH writes after the last block (Adler-32, or
        CRC-32 and ISIZE; nothing for raw).
        """
        self.data, self.next_in, self.out = data, 0, bytearray()
        for size in _output_blocks(_BLOCK_SIZES[0]):
            self.avail_out = size
            self._deflate(flush, trailer)
            if self.avail_out:
                break
        out, self.out, self.data = bytes(self.out), bytearray(), memoryview(b"")
        return out

    # --- deflate.c --------------------------------------------------------------

    @property
    def avail_in(self) -> int:
        return len(self.data) - self.next_in

    def _deflate(self, flush: int, trailer: bytes) -> None:
        """deflate() from its pending flush on (the caller has ruled out Z_BUF_ERROR)."""
        if self.pending:
            self._flush_pending()
            if not self.avail_out:
                return
        if self.header is not None:
            self.pending += self.header
            self.header = None
            self._flush_pending()  # compression must start with an empty pending buffer
            if self.pending:
                return
        if self.avail_in or (flush != Z_NO_FLUSH and not self.finishing):
            state = self._deflate_stored(flush)
            if state in (FINISH_STARTED, FINISH_DONE):
                self.finishing = True
            if state in (NEED_MORE, FINISH_STARTED):
                return
            if state == BLOCK_DONE:
                if flush == Z_PARTIAL_FLUSH:
                    self._align()
                elif flush != Z_BLOCK:  # Z_SYNC_FLUSH, Z_FULL_FLUSH: an empty stored block
                    self._stored_block(b"", last=False)
                    if flush == Z_FULL_FLUSH:  # forget the history (lookahead is always 0 here)
                        self.strstart = self.block_start = 0
                self._flush_pending()
                if not self.avail_out:
                    return
        if flush != Z_FINISH or self.trailer_written:
            return
        self.pending += trailer
        self.trailer_written = True
        self._flush_pending()

    def _deflate_stored(self, flush: int) -> int:
        """deflate.c's deflate_stored, statement for statement (checksums aside)."""
        min_block = min(self.pending_buf_size - 5, self.w_size)
        used = self.avail_in
        last = False
        while True:  # stored blocks straight to the output
            length = MAX_STORED
            have = (self.bit_count + 42) >> 3  # header bytes
            if self.avail_out < have:
                break
            have = self.avail_out - have
            left = self.strstart - self.block_start
            length = min(length, left + self.avail_in, have)
            if length < min_block and (
                (length == 0 and flush != Z_FINISH) or flush == Z_NO_FLUSH or length != left + self.avail_in
            ):
                break
            last = flush == Z_FINISH and length == left + self.avail_in
            self._stored_header(length, last)
            self._flush_pending()
            if left:
                left = min(left, length)
                self._emit(self.window[self.block_start : self.block_start + left])
                self.block_start += left
                length -= left
            if length:
                self._emit(self.data[self.next_in : self.next_in + length])
                self.next_in += length
            if last:
                break
        used -= self.avail_in
        if used:  # the window keeps the last w_size bytes copied
            if used >= self.w_size:
                self.window[: self.w_size] = self.data[self.next_in - self.w_size : self.next_in]
                self.strstart = self.w_size
            else:
                if self.window_size - self.strstart <= used:
                    self._slide()
                self.window[self.strstart : self.strstart + used] = self.data[self.next_in - used : self.next_in]
                self.strstart += used
            self.block_start = self.strstart
        if last:
            return FINISH_DONE
        if flush not in (Z_NO_FLUSH, Z_FINISH) and not self.avail_in and self.strstart == self.block_start:
            return BLOCK_DONE
        have = self.window_size - self.strstart  # fill the window with what input remains
        if self.avail_in > have and self.block_start >= self.w_size:
            self.block_start -= self.w_size
            self._slide()
            have += self.w_size
        have = min(have, self.avail_in)
        if have:
            self.window[self.strstart : self.strstart + have] = self.data[self.next_in : self.next_in + have]
            self.next_in += have
            self.strstart += have
        have = min(self.pending_buf_size - ((self.bit_count + 42) >> 3), MAX_STORED)  # room in pending
        min_block = min(have, self.w_size)
        left = self.strstart - self.block_start
        if left >= min_block or (
            (left or flush == Z_FINISH) and flush != Z_NO_FLUSH and not self.avail_in and left <= have
        ):
            length = min(left, have)
            last = flush == Z_FINISH and not self.avail_in and length == left
            self._stored_block(self.window[self.block_start : self.block_start + length], last)
            self.block_start += length
            self._flush_pending()
        return FINISH_STARTED if last else NEED_MORE

    def _slide(self) -> None:
        self.strstart -= self.w_size
        self.window[: self.strstart] = self.window[self.w_size : self.w_size + self.strstart]

    # --- trees.c and the pending buffer --------------------------------------------

    def _send_bits(self, value: int, count: int) -> None:
        self.bit_buf |= value << self.bit_count
        self.bit_count += count
        while self.bit_count >= 8:
            self.pending.append(self.bit_buf & 0xFF)
            self.bit_buf >>= 8
            self.bit_count -= 8

    def _stored_header(self, length: int, last: bool) -> None:
        """_tr_stored_block's header: BFINAL, BTYPE 00, to a byte boundary, LEN, NLEN."""
        self._send_bits(int(last), 3)
        if self.bit_count:
            self._send_bits(0, 8 - self.bit_count)
        self.pending += length.to_bytes(2, "little") + (length ^ 0xFFFF).to_bytes(2, "little")

    def _stored_block(self, data: bytes | bytearray | memoryview, last: bool) -> None:
        self._stored_header(len(data), last)
        self.pending += data

    def _align(self) -> None:
        """_tr_align: an empty fixed block (Z_PARTIAL_FLUSH), 10 bits."""
        self._send_bits(2, 3)
        self._send_bits(0, 7)  # end-of-block's fixed code

    def _flush_pending(self) -> None:
        count = min(len(self.pending), self.avail_out)
        self._emit(self.pending[:count])
        del self.pending[:count]

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data
        self.avail_out -= len(data)
