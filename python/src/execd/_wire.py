"""Wire details below the JSON-RPC calls: base64 chunks and the binary
output frame (docs/PROTOCOL.md, "Binary output frames"): kind (1 byte, 1 =
process output), stream (1 byte: 0 stdout, 1 stderr, 2 pty), seq (8 bytes),
process id length n (2 bytes), the process id (n bytes of UTF-8), then the
raw output; integers little-endian. And the transfer piece frame
("File transfers"): kind (1 byte, 2), stream id (4 bytes), seq (8 bytes),
then the bytes.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from .errors import ProtocolError

STREAMS = ("stdout", "stderr", "pty")
_HEADER = struct.Struct("<BBQH")
_PIECE = struct.Struct("<BIQ")
KIND_OUTPUT = 1
KIND_PIECE = 2


@dataclass(frozen=True)
class BinaryOutput:
    """One decoded binary output frame."""

    process_id: str
    seq: int
    stream: str
    data: bytes


def decode_binary_output(frame: bytes) -> BinaryOutput:
    """Decode a binary output frame; :class:`ProtocolError` if malformed."""
    if len(frame) < _HEADER.size:
        raise ProtocolError(f"binary frame of {len(frame)} bytes is shorter than its header")
    kind, stream, seq, id_len = _HEADER.unpack_from(frame)
    if kind != 1:
        raise ProtocolError(f"binary frame of unknown kind {kind}")
    if stream >= len(STREAMS):
        raise ProtocolError(f"binary frame names unknown stream {stream}")
    end = _HEADER.size + id_len
    if len(frame) < end:
        raise ProtocolError("binary frame ends inside its process id")
    try:
        process_id = frame[_HEADER.size : end].decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolError("binary frame's process id is not UTF-8") from err
    return BinaryOutput(process_id, seq, STREAMS[stream], bytes(frame[end:]))


def encode_b64(data: bytes) -> str:
    """Standard base64 with padding, as the protocol carries bytes."""
    return base64.b64encode(data).decode("ascii")


def decode_b64(text: object, what: str) -> bytes:
    """Decode base64 from the server; :class:`ProtocolError` names ``what`` if bad."""
    if not isinstance(text, str):
        raise ProtocolError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ProtocolError(f"{what} is not valid base64: {err}") from err


def encode_piece(stream_id: int, seq: int, data: bytes) -> bytes:
    """A transfer piece frame."""
    return _PIECE.pack(KIND_PIECE, stream_id, seq) + data


def decode_piece(frame: bytes) -> tuple[int, int, bytes]:
    """``(stream id, seq, bytes)`` of a transfer piece frame; :class:`ProtocolError` if malformed."""
    if len(frame) < _PIECE.size:
        raise ProtocolError(f"piece frame of {len(frame)} bytes is shorter than its header")
    kind, stream_id, seq = _PIECE.unpack_from(frame)
    if kind != KIND_PIECE:
        raise ProtocolError(f"binary frame of kind {kind} is not a piece")
    return stream_id, seq, bytes(frame[_PIECE.size :])
