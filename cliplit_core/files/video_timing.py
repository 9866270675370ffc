"""The timestamps a video's frames are encoded with: each decoded frame's own.

An encoder works in its codec context's time base, and PyAV rebases every frame into it; left
unset, that time base is 1 / frame rate, which rounds variable frame timing onto a uniform grid
(gaps of 0.05 s and 0.15 s came out as 0.1 s each). So the encoder is given the input stream's
time base and every frame its decoded ``pts`` unchanged. The muxer rescales into the container's
time base (Matroska's is 1 ms), at most one tick of it away.

Encoders leave their packets' durations unset, and muxers then give every frame 1 / frame rate,
which is wrong for the last frame of a variable-rate video (the file's length changes). So each
packet gets its frame's duration: up to the next frame's ``pts``, and for the last frame up to
the end of the input stream. MP4 and MOV store durations in decoding order (a sample lasts until
the next one's ``dts``) and take only the last packet's own: with B-frames that packet is not
the last frame shown, so it gets the duration that makes the track end where the input did.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable

DEFAULT_RATE = Fraction(25)  # a stream that declares no frame rate and no time base


class FrameTimes:
    """Each frame's ``pts`` and duration, in ``time_base`` (the input stream's, also the encoder's).

    ``pts``: a frame without one (some AVI and raw streams) follows the previous one by one frame
    at ``rate``. Encoders refuse a ``pts`` that does not increase, so a repeated or backward one
    (a damaged file) becomes the previous one plus one tick: the frame is kept, not dropped.

    ``end``: where the input stream ends, in ``time_base`` ticks, when the file says (the last
    frame lasts until then); else the last frame keeps its decoded duration, or one frame at ``rate``.
    """

    def __init__(self, time_base: Fraction | None, rate: Fraction | None, end: int | None = None):
        self.rate = Fraction(rate) if rate else DEFAULT_RATE
        self.time_base = Fraction(time_base) if time_base else 1 / self.rate
        self.frame_ticks = max(1, round(1 / (self.rate * self.time_base)))
        self.end = end
        self.first: int | None = None  # the first frame's pts
        self.first_dts: int | None = None  # the first packet's dts
        self.last: int | None = None
        self.last_duration = 0  # the last frame's decoded duration (0: none)
        self.durations: dict[int, int] = {}  # pts -> duration, of the frames before the last
        self.waiting: list = []  # packets whose frame's duration is not known yet, in muxing order

    def pts(self, pts: int | None, time_base: Fraction | None = None, duration: int | None = None) -> int:
        """The ``pts`` to encode a decoded frame with (``time_base``: the frame's, if it differs;
        ``duration``: the frame's decoded one, kept if it is the last)."""
        if time_base and Fraction(time_base) != self.time_base:
            scale = Fraction(time_base) / self.time_base
            pts = None if pts is None else round(pts * scale)
            duration = round(duration * scale) if duration else duration
        if pts is None:
            pts = 0 if self.last is None else self.last + self.frame_ticks
        elif self.last is not None and pts <= self.last:
            pts = self.last + 1
        if self.last is not None:
            self.durations[self.last] = pts - self.last
        else:
            self.first = pts
        self.last, self.last_duration = pts, duration or 0
        return pts

    def finish(self) -> None:
        """No frame follows: the last one lasts until the stream's end."""
        if self.last is None:
            return
        to_end = self.end - self.last if self.end is not None else 0
        self.durations[self.last] = to_end if to_end > 0 else (self.last_duration or self.frame_ticks)
        self.end = self.last + self.durations[self.last]

    def timed(self, packets: Iterable, *, last: bool = False, decode_order: bool = False) -> list:
        """The encoder's ``packets`` that can be muxed now, each with its frame's duration; a packet
        whose frame's duration is not known yet waits (with those after it) for a later call.
        ``last``: the encoder's final packets (after :meth:`finish`); ``decode_order``: the container
        takes durations in decoding order (MP4, MOV), then the final packet's duration is set so
        that the track ends at the input's end."""
        self.waiting.extend(packets)
        ready = 0
        for packet in self.waiting:
            if packet.pts is not None and packet.pts not in self.durations:
                break
            if packet.pts is not None:
                packet.duration = self.durations.pop(packet.pts)
            if self.first_dts is None and packet.dts is not None:
                self.first_dts = packet.dts
            ready += 1
        done, self.waiting = self.waiting[:ready], self.waiting[ready:]
        if last and decode_order and done and done[-1].dts is not None and self.first_dts is not None:
            to_end = (self.end - self.first) - (done[-1].dts - self.first_dts)
            if to_end > 0:
                done[-1].duration = to_end
        return done
