"""The wire format between the Blender add-on and the backend server. Standard library only.

This one file is the single definition of the protocol. The backend imports it
as `emo_backend.protocol`; the add-on loads the same file by path from the
extension's bundled copy of `emo_backend/` (addon/ipc.py) without importing the
`emo_backend` package, so both halves always speak the same version and
Blender never sees torch. Keep it free of third-party imports.

Transport: `multiprocessing.connection` on 127.0.0.1, HMAC challenge with a
random key the add-on writes as one hex line on the server's stdin. Every
message is one UTF-8 JSON object sent with `send_bytes` (never `send`, which
pickles).

Start-up: the server prints one JSON line on stdout, `{"emosplat_backend":
PROTOCOL_VERSION, "port": P, "pid": N}`, then accepts connections.

Requests carry `"type"` and an integer `"id"`; every reply carries the `"id"`
of the request it answers. Quick requests get exactly one reply (`"result"` or
`"error"`). `render_shot` streams `"progress"` replies, then ends with one of
`"done"`, `"cancelled"` or `"error"`. See docs/shot-spec.md for the shot.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1
HOST = "127.0.0.1"
AUTHKEY_BYTES = 32
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a shot spec with thousands of frames is a few MB

# Requests (add-on -> backend).
PING = "ping"
STATUS = "status"
CAPABILITIES = "capabilities"
RENDER_SHOT = "render_shot"     # {"spec": {...shot spec...}}
RENDER_FRAME = "render_frame"   # {"spec": {...}, "frame": n}: one frame now (preview)
CANCEL = "cancel"               # cancels the running render_shot / render_frame
TEXT_TO_EMOTION = "text_to_emotion"  # {"text": "..."}
VA_TO_EMOTION = "va_to_emotion"      # {"valence": v, "arousal": a}
SHUTDOWN = "shutdown"
REQUESTS = frozenset(
    {PING, STATUS, CAPABILITIES, RENDER_SHOT, RENDER_FRAME, CANCEL, TEXT_TO_EMOTION, VA_TO_EMOTION, SHUTDOWN}
)
LONG_REQUESTS = frozenset({RENDER_SHOT, RENDER_FRAME})  # run in the worker thread; one at a time

# Replies (backend -> add-on).
RESULT = "result"        # quick request answered: {"type": "result", "id": i, ...payload}
PROGRESS = "progress"    # {"done": k, "total": n, "frame": f}
DONE = "done"            # long request finished: {"frames": [...], "rendered": r, "skipped": s, ...}
CANCELLED = "cancelled"  # long request stopped by `cancel`; finished frames stay on disk
ERROR = "error"          # {"message": "what went wrong and what to do"}
FINAL_REPLIES = frozenset({RESULT, DONE, CANCELLED, ERROR})


class ProtocolError(ValueError):
    """A message that is not a JSON object with a string "type"."""


def encode(message: dict[str, Any]) -> bytes:
    """One message -> bytes for `send_bytes`. NaN/Inf are refused: JSON has no such numbers."""
    if not isinstance(message.get("type"), str):
        raise ProtocolError(f'message needs a string "type": {message!r:.200}')
    return json.dumps(message, allow_nan=False, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> dict[str, Any]:
    """Bytes from `recv_bytes` -> one message dict (validated shape, not content)."""
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"message is not UTF-8 JSON: {err}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError(f'message is not a JSON object with a string "type": {str(message)[:200]}')
    return message


def hello_line(port: int, pid: int) -> str:
    """The one stdout line the server prints once it listens."""
    return json.dumps({"emosplat_backend": PROTOCOL_VERSION, "port": int(port), "pid": int(pid)})


def parse_hello(line: str) -> dict[str, Any]:
    """Parse the server's start-up line; raises ProtocolError when it is not one (or another version)."""
    try:
        hello = json.loads(line)
    except json.JSONDecodeError:
        raise ProtocolError(f"backend printed {line.strip()[:200]!r} instead of its start-up line") from None
    if not isinstance(hello, dict) or "emosplat_backend" not in hello or not isinstance(hello.get("port"), int):
        raise ProtocolError(f"backend printed {line.strip()[:200]!r} instead of its start-up line")
    if hello["emosplat_backend"] != PROTOCOL_VERSION:
        raise ProtocolError(
            f"backend speaks protocol {hello['emosplat_backend']}, the add-on {PROTOCOL_VERSION}: "
            "update the add-on and the backend together"
        )
    return hello
