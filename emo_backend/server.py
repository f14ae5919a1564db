"""The backend server Blender talks to (`emosplat serve`). Protocol: emo_backend/protocol.py.

Start-up: read the auth key (one hex line) from stdin, listen on 127.0.0.1 at
a free port, print the hello line with that port on stdout. The add-on keeps
our stdin open for as long as it wants us: stdin reaching EOF (Blender quit or
crashed) or our parent process changing (re-parented after the parent died)
ends the server, so no backend outlives Blender.

One client at a time. The connection's reader answers quick requests itself;
a render runs in one worker thread so `cancel`, `ping` and `status` are
answered while it works. Replies from both threads go through one lock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import traceback
from multiprocessing.connection import Connection, Listener
from typing import Any, Callable, TextIO

from emo_backend import protocol
from emo_backend.errors import EmoSplatError

PARENT_POLL_S = 1.0
SHUTDOWN_GRACE_S = 5.0


def _log(*args: Any) -> None:
    print("[emosplat backend]", *args, file=sys.stderr, flush=True)


class Server:
    """Request handling, independent of how the process was started (tests drive it directly)."""

    def __init__(self, authkey: bytes, host: str = protocol.HOST, port: int = 0):
        self.listener = Listener((host, port), authkey=authkey)
        self.port = self.listener.address[1]
        self.stop = threading.Event()
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._job_id: int | None = None

    # -- sending ------------------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            with self._send_lock:
                conn.send_bytes(protocol.encode(message))
        except (OSError, EOFError, ValueError):
            pass  # the client went away; the reader loop notices and waits for the next one

    def _reply(self, request_id: Any, kind: str, **payload: Any) -> None:
        self._send({"type": kind, "id": request_id, **payload})

    # -- serving ------------------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept clients until `stop` is set. One client at a time; the reader of each runs in its own thread,
        so a second (or wrong-key) connection attempt is answered even while Blender is connected."""
        while not self.stop.is_set():
            try:
                conn = self.listener.accept()
            except Exception as err:  # AuthenticationError (wrong key), a port scan, a half-open socket
                if self.stop.is_set():
                    break
                _log(f"refused a connection: {type(err).__name__}: {err}")
                continue
            if self.stop.is_set():
                conn.close()
                break
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    conn.send_bytes(protocol.encode({"type": protocol.ERROR, "id": None, "message":
                                                     "this backend already serves another Blender session"}))
                    conn.close()
                continue
            self._conn = conn
            threading.Thread(target=self._serve_client, args=(conn,), name="emosplat-client", daemon=True).start()

    def _serve_client(self, conn: Connection) -> None:
        try:
            self._read_loop(conn)
        finally:
            self._cancel.set()  # a client that left does not want its render any more
            self._conn = None
            with contextlib.suppress(Exception):
                conn.close()

    def _read_loop(self, conn: Connection) -> None:
        while not self.stop.is_set():
            try:
                data = conn.recv_bytes(protocol.MAX_MESSAGE_BYTES)
            except (EOFError, OSError):
                return
            try:
                message = protocol.decode(data)
            except protocol.ProtocolError as err:
                self._reply(None, protocol.ERROR, message=str(err))
                continue
            self.handle(message)

    def handle(self, message: dict[str, Any]) -> None:
        kind, request_id = message["type"], message.get("id")
        if kind not in protocol.REQUESTS:
            self._reply(request_id, protocol.ERROR, message=f"unknown request {kind!r}; the add-on and backend "
                        "versions differ: update them together")
            return
        if kind in protocol.LONG_REQUESTS:
            self._start_job(message)
            return
        try:
            if kind == protocol.SHUTDOWN:
                self._reply(request_id, protocol.RESULT, ok=True)
                self.shutdown()
                return
            if kind == protocol.CANCEL:
                running = self._worker is not None and self._worker.is_alive()
                self._cancel.set()
                self._reply(request_id, protocol.RESULT, cancelling=running)
                return
            handler: Callable[[dict], dict] = QUICK_HANDLERS[kind]
            self._reply(request_id, protocol.RESULT, **handler(message))
        except EmoSplatError as err:
            self._reply(request_id, protocol.ERROR, message=str(err))
        except Exception as err:
            _log(traceback.format_exc())
            self._reply(request_id, protocol.ERROR, message=f"backend bug in {kind}: {type(err).__name__}: {err}")

    # -- long jobs ----------------------------------------------------------------------------------------

    def _start_job(self, message: dict[str, Any]) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._reply(message.get("id"), protocol.ERROR,
                        message=f"a render (request {self._job_id}) is still running; cancel it or wait")
            return
        self._cancel.clear()
        self._job_id = message.get("id")
        self._worker = threading.Thread(target=self._run_job, args=(message,), name="emosplat-render", daemon=True)
        self._worker.start()

    def _run_job(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        try:
            from emo_backend.shot import parse_shot_spec, render_shot

            spec = parse_shot_spec(message.get("spec"), base_dir=message.get("base_dir"))
            only = None
            if message["type"] == protocol.RENDER_FRAME:
                frame = message.get("frame")
                if isinstance(frame, bool) or not isinstance(frame, int):
                    raise EmoSplatError(f"render_frame needs an integer 'frame', got {frame!r}")
                only = [frame]

            def progress(done: int, total: int, frame: int) -> None:
                self._reply(request_id, protocol.PROGRESS, done=done, total=total, frame=frame)

            result = render_shot(spec, progress=progress, cancel=self._cancel.is_set, only_frames=only)
            payload = result.to_json()
            payload.update(folder=str(spec.output_dir), stem=spec.stem,
                           image=spec.image_path(spec.frame_start).name, depth=spec.depth_path(spec.frame_start).name)
            self._reply(request_id, protocol.CANCELLED if result.cancelled else protocol.DONE, **payload)
        except EmoSplatError as err:
            self._reply(request_id, protocol.ERROR, message=str(err))
        except MemoryError:
            self._reply(request_id, protocol.ERROR, message="the backend ran out of memory; lower the resolution "
                        "or render fewer frames at once")
        except Exception as err:
            _log(traceback.format_exc())
            text = f"{type(err).__name__}: {err}"
            if "out of memory" in text.lower():
                text = f"the GPU ran out of memory ({text}); lower the resolution or choose device CPU"
            self._reply(request_id, protocol.ERROR, message=f"render failed: {text}")

    def shutdown(self) -> None:
        """Stop: cancel the render, give it a moment to finish its frame, then leave."""
        self.stop.set()
        self._cancel.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(SHUTDOWN_GRACE_S)
        # close() does not wake a thread blocked in accept(); a throwaway connection does (it fails the key).
        with contextlib.suppress(OSError):
            socket.create_connection((protocol.HOST, self.port), timeout=1.0).close()
        with contextlib.suppress(Exception):
            self.listener.close()
        with contextlib.suppress(Exception):
            self._conn and self._conn.close()


# ---------------------------------------------------------------------------------------------- handlers


def _versions() -> dict[str, Any]:
    import platform

    import emo_backend

    info: dict[str, Any] = {"backend_version": emo_backend.__version__, "protocol": protocol.PROTOCOL_VERSION,
                            "python": platform.python_version(), "pid": os.getpid()}
    try:
        import torch

        info["torch"] = torch.__version__
        cuda = bool(torch.cuda.is_available())
        info["torch_cuda_available"] = cuda
        info["device"] = torch.cuda.get_device_name(0) if cuda else "cpu"
    except Exception as err:  # a broken torch install is reported, not fatal: the add-on shows it
        info.update(torch=None, torch_cuda_available=False, device="none", torch_error=str(err))
    return info


def _ping(message: dict) -> dict:
    return {"pong": True, "protocol": protocol.PROTOCOL_VERSION}


def _status(message: dict) -> dict:
    return _versions()


def _text_prompts_ready() -> bool:
    """Text prompts need the optional sentence encoder package; report whether it is installed."""
    try:
        from emo_backend.emotion.text import model_folder

        model_folder()
        return True
    except Exception:
        return False


def _capabilities(message: dict) -> dict:
    from emo_backend.emotion.space import EMOTIONS

    return {"text_prompts": _text_prompts_ready(), "valence_arousal": True, "audio_driven": False,
            "formats": ["png"], "emotions": list(EMOTIONS)}


def _text_to_emotion(message: dict) -> dict:
    from emo_backend.emotion.text import text_to_emotion

    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise EmoSplatError("type an emotion prompt first, e.g. 'slightly annoyed' or 'overjoyed'")
    frame = text_to_emotion(text)
    return {"weights": [float(w) for w in frame.weights], "intensity": float(frame.intensity)}


def _va_to_emotion(message: dict) -> dict:
    import math

    import torch

    from emo_backend.emotion.circumplex import va_to_emotion

    try:
        valence, arousal = float(message["valence"]), float(message["arousal"])
    except (KeyError, TypeError, ValueError):
        raise EmoSplatError("va_to_emotion needs numbers 'valence' and 'arousal' in [-1, 1]") from None
    if not (math.isfinite(valence) and math.isfinite(arousal)):
        raise EmoSplatError("valence and arousal must be finite numbers in [-1, 1]")
    weights, intensity = va_to_emotion(torch.tensor(valence), torch.tensor(arousal))
    return {"weights": [float(w) for w in weights.tolist()], "intensity": float(intensity)}


QUICK_HANDLERS: dict[str, Callable[[dict], dict]] = {
    protocol.PING: _ping,
    protocol.STATUS: _status,
    protocol.CAPABILITIES: _capabilities,
    protocol.TEXT_TO_EMOTION: _text_to_emotion,
    protocol.VA_TO_EMOTION: _va_to_emotion,
}


# ---------------------------------------------------------------------------------------------- process


def read_authkey(stdin: TextIO) -> bytes:
    line = stdin.readline().strip()
    try:
        key = bytes.fromhex(line)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise EmoSplatError("emosplat serve reads its auth key as one hex line (>= 16 bytes) on stdin; "
                            "it is started by the Blender add-on, not by hand")
    return key


def _watch_parent(server: Server, stdin: TextIO, parent_pid: int) -> None:
    """End the process when stdin reaches EOF (the add-on closed it or died) or our parent changes."""

    def stdin_eof() -> None:
        try:
            while stdin.readline():
                pass
        except (OSError, ValueError):
            pass
        _log("stdin closed: shutting down")
        _exit(server)

    def parent_gone() -> None:
        while not server.stop.wait(PARENT_POLL_S):
            if os.getppid() != parent_pid:
                _log("parent process ended: shutting down")
                _exit(server)

    threading.Thread(target=stdin_eof, name="emosplat-stdin", daemon=True).start()
    threading.Thread(target=parent_gone, name="emosplat-parent", daemon=True).start()


def _exit(server: Server) -> None:
    # accept()/recv() in the main thread cannot be interrupted portably, so leave the hard way once the
    # render (which writes every file atomically) had its chance to stop.
    server.shutdown()
    sys.stderr.flush()
    os._exit(0)


def serve(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the server process until shut down; returns the exit code."""
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    authkey = read_authkey(stdin)
    try:
        server = Server(authkey)
    except OSError as err:
        raise EmoSplatError(f"cannot listen on {protocol.HOST}: {err}; is loopback networking blocked?") from None
    _watch_parent(server, stdin, os.getppid())
    stdout.write(protocol.hello_line(server.port, os.getpid()) + "\n")
    stdout.flush()
    _log(f"listening on {protocol.HOST}:{server.port}")
    threading.Thread(target=server.serve_forever, name="emosplat-accept", daemon=True).start()
    server.stop.wait()  # set by a `shutdown` request; stdin EOF and a dead parent exit directly
    server.shutdown()
    return 0


if __name__ == "__main__":  # pragma: no cover - `emosplat serve` is the entry point
    raise SystemExit(serve())
