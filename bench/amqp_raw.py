"""The AMQP handshake both halves of the load generator speak by hand (pamqp frames, no client).

The sender and the receiver share the box with what they measure, so neither runs an AMQP
client library: each reads and writes frames itself. Up to an open channel 1 the two talk
alike; ``handshake_reply`` says what to answer to each frame the broker sends until then.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands, frame, header
from yarl import URL

FRAME_HEAD = struct.Struct(">BHI")
METHOD, HEADER, BODY = 1, 2, 3
CHANNEL = 1  # the one channel each half opens


def marshal(channel: int, *frames: Any) -> bytes:
    """Frames for one write."""
    return b"".join(frame.marshal(f, channel) for f in frames)


def protocol_header() -> bytes:
    """What a client sends first."""
    return frame.marshal(header.ProtocolHeader(), 0)


def handshake_reply(value: Any, url: URL, name: str) -> bytes | None:
    """What to send in answer to ``value`` on the way to an open channel; None when it is open.

    Raises when the broker refuses (wrong credentials, no such vhost).
    """
    if isinstance(value, commands.Connection.Start):
        user, password = url.user or "guest", url.password or "guest"
        return marshal(
            0,
            commands.Connection.StartOk(
                client_properties={"connection_name": name},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
                locale="en_US",
            ),
        )
    if isinstance(value, commands.Connection.Tune):
        return marshal(
            0,
            commands.Connection.TuneOk(value.channel_max, value.frame_max, 0),  # no heartbeats
            commands.Connection.Open(virtual_host=url.path[1:] or "/"),
        )
    if isinstance(value, commands.Connection.OpenOk):
        return marshal(CHANNEL, commands.Channel.Open())
    if isinstance(value, commands.Channel.OpenOk):
        return None
    if isinstance(value, commands.Connection.Close | commands.Channel.Close):
        raise RuntimeError(f"broker refused: {value.reply_text}")
    return b""  # nothing to answer (a frame the handshake does not need)


def channel_close_frame() -> bytes:
    """A polite Channel.Close of the one channel."""
    return marshal(
        CHANNEL, commands.Channel.Close(reply_code=200, reply_text="done", class_id=0, method_id=0)
    )


def close_frame() -> bytes:
    """A polite Connection.Close."""
    return marshal(
        0, commands.Connection.Close(reply_code=200, reply_text="done", class_id=0, method_id=0)
    )
