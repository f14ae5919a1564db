"""The add-on's side of the backend: start the process, hand over the key, talk JSON, notice when it dies.

The wire format is `emo_backend/protocol.py`, loaded by path from the copy of
the backend this extension ships (never `import emo_backend`: that package
pulls torch). One definition serves both halves, so they cannot drift apart.

Nothing here blocks the UI for long: quick requests wait a few seconds at
most; a render's progress is read with `poll()` from a timer.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import queue
import secrets
import subprocess
import threading
import time
from multiprocessing.connection import Client
from pathlib import Path

EXTENSION_ROOT = Path(__file__).resolve().parents[1]  # holds addon/ and emo_backend/
PROTOCOL_FILE = EXTENSION_ROOT / "emo_backend" / "protocol.py"
START_TIMEOUT_S = 30.0
QUICK_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 12


class BackendError(RuntimeError):
    """The backend is missing, would not start, refused us, died or answered with an error."""


_wire_module = None


def wire():
    """emo_backend/protocol.py as a standalone module (stdlib only)."""
    global _wire_module
    if _wire_module is None:
        if not PROTOCOL_FILE.is_file():
            raise BackendError(f"{PROTOCOL_FILE} is missing: the EmoSplat extension is incomplete; reinstall it")
        spec = importlib.util.spec_from_file_location("_emosplat_wire", PROTOCOL_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _wire_module = module
    return _wire_module


def repo_python() -> str:
    """The project's own environment when the extension runs from a checkout ("" otherwise)."""
    for candidate in (EXTENSION_ROOT / ".venv" / "bin" / "python", EXTENSION_ROOT / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    return ""


def backend_env() -> dict[str, str]:
    """Environment for the backend: the bundled emo_backend first on its path, so both halves match."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXTENSION_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def check_python(python: str, timeout: float = 120.0) -> str:
    """Run `python -c "import torch, emo_backend"`; returns a one-line report, raises BackendError when unusable."""
    if not python:
        raise BackendError("no backend Python is set: Preferences > Add-ons > EmoSplat > Backend Python. "
                           "From a checkout run `./run setup` and pick .venv/bin/python")
    if not Path(python).is_file():
        raise BackendError(f"backend Python {python} does not exist; set it in the EmoSplat preferences")
    code = "import torch, emo_backend; print(emo_backend.__version__, torch.__version__, torch.cuda.is_available())"
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout, env=backend_env(),
                              cwd=str(EXTENSION_ROOT))
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BackendError(f"could not run {python}: {err}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BackendError(f"{python} cannot import torch and emo_backend ({last}); "
                           f"install the backend into it: {python} -m pip install -e {EXTENSION_ROOT}")
    backend_version, torch_version, cuda = proc.stdout.split()
    return f"emo_backend {backend_version}, torch {torch_version}, CUDA {'yes' if cuda == 'True' else 'no'}"


class Backend:
    """One backend process and its connection."""

    def __init__(self, python: str, log_path: str | os.PathLike | None = None, args: list[str] | None = None):
        self.python = python
        self.args = args if args is not None else ["-m", "emo_backend.server"]
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.conn = None
        self.port: int | None = None
        self._next_id = 1
        self._lock = threading.Lock()
        self._pending: dict[int, collections.deque] = collections.defaultdict(collections.deque)
        self._log_file = None

    # -- life cycle -----------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.conn is not None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        if self.alive:
            return
        self.stop()
        if not self.python or not Path(self.python).is_file():
            raise BackendError(f"backend Python {self.python!r} does not exist; set it in the EmoSplat preferences "
                               "(from a checkout: ./run setup, then pick .venv/bin/python)")
        w = wire()
        key = secrets.token_bytes(w.AUTHKEY_BYTES)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.python, *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._log_file if self._log_file else subprocess.DEVNULL,
                env=backend_env(), cwd=str(EXTENSION_ROOT),
            )
        except OSError as err:
            self._close_log()
            raise BackendError(f"could not start the backend with {self.python}: {err}") from None
        try:
            self.proc.stdin.write(key.hex().encode() + b"\n")
            self.proc.stdin.flush()
            hello = w.parse_hello(self._read_line(timeout))
            self.port = hello["port"]
            self.conn = Client((w.HOST, self.port), authkey=key)
        except Exception as err:
            self.stop()
            raise BackendError(f"the backend did not start: {err}. {self.log_tail()}".strip()) from None

    def _read_line(self, timeout: float) -> str:
        """The first stdout line, without blocking forever on a backend that hangs or dies silently."""
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                if self.proc.poll() is not None and lines.empty():
                    time.sleep(0.05)
                    if lines.empty():
                        raise BackendError(f"it exited with code {self.proc.returncode}") from None
                continue
            if not line:
                raise BackendError(f"it exited with code {self.proc.wait(5)} before saying hello")
            return line.decode("utf-8", "replace")
        raise BackendError(f"no start-up line within {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Ask it to leave, close its stdin (which ends it too), and kill it if it lingers."""
        if self.conn is not None:
            try:
                self.conn.send_bytes(wire().encode({"type": "shutdown", "id": 0}))
            except Exception:
                pass
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None
        if self.proc is not None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except Exception:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
            for stream in (self.proc.stdout,):
                try:
                    stream and stream.close()
                except Exception:
                    pass
        self._close_log()
        self._pending.clear()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        lines = self.log_path.read_text("utf-8", "replace").strip().splitlines()[-LOG_TAIL_LINES:]
        return ("Backend log (" + str(self.log_path) + "):\n" + "\n".join(lines)) if lines else ""

    def death_message(self) -> str:
        code = self.proc.poll() if self.proc is not None else None
        what = f"the backend stopped (exit code {code})" if code is not None else "the backend connection broke"
        return f"{what}; restart it from the EmoSplat panel. {self.log_tail()}".strip()

    # -- messages -------------------------------------------------------------------------------------------

    def send(self, message: dict) -> int:
        """Send a request; returns its id. Raises BackendError when the backend is gone."""
        if self.conn is None:
            raise BackendError("the backend is not running; start it from the EmoSplat panel")
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
        try:
            self.conn.send_bytes(wire().encode({**message, "id": request_id}))
        except (OSError, EOFError, ValueError) as err:
            self.conn = None
            raise BackendError(self.death_message()) from err
        return request_id

    def _receive_available(self, wait: float = 0.0) -> None:
        """Move every message that has arrived into the per-request queues."""
        if self.conn is None:
            raise BackendError(self.death_message())
        try:
            while self.conn.poll(wait):
                message = wire().decode(self.conn.recv_bytes())
                self._pending[message.get("id")].append(message)
                wait = 0.0
        except (OSError, EOFError) as err:
            self.conn = None
            raise BackendError(self.death_message()) from err

    def poll(self, request_id: int) -> list[dict]:
        """Messages for `request_id` that arrived so far (never blocks)."""
        self._receive_available()
        queue_ = self._pending.get(request_id)
        out = list(queue_) if queue_ else []
        if queue_:
            queue_.clear()
        return out

    def request(self, message: dict, timeout: float = QUICK_TIMEOUT_S) -> dict:
        """A quick request and its one reply; raises BackendError for an error reply, a timeout or a dead backend."""
        request_id = self.send(message)
        deadline = time.monotonic() + timeout
        while True:
            self._receive_available(wait=0.05)
            queue_ = self._pending.get(request_id)
            if queue_:
                reply = queue_.popleft()
                del self._pending[request_id]
                if reply["type"] == "error":
                    raise BackendError(reply.get("message", "backend error"))
                return reply
            if time.monotonic() > deadline:
                raise BackendError(f"the backend did not answer '{message['type']}' within {timeout:.0f} s")


# One backend per Blender session, shared by every operator.
_current: Backend | None = None


def current() -> Backend | None:
    return _current


def set_current(backend: Backend | None) -> None:
    global _current
    if _current is not None and _current is not backend:
        _current.stop()
    _current = backend


def python_default_message() -> str:
    return ("Set the Python that has torch and the EmoSplat backend installed. From a checkout: run ./run setup and "
            "choose .venv/bin/python; otherwise: python3.11 -m venv ~/emosplat-venv && ~/emosplat-venv/bin/pip "
            f"install {EXTENSION_ROOT}")

