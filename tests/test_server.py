"""The IPC backend: auth, JSON-only messages, streaming, cancel, and never outliving its parent."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from multiprocessing.connection import AuthenticationError, Client
from pathlib import Path

import pytest

from emo_backend import protocol, server, shot

REPO = Path(__file__).resolve().parents[1]


def _start_backend(authkey: bytes) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from emo_backend.server import serve; raise SystemExit(serve())"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    proc.stdin.write(authkey.hex() + "\n")
    proc.stdin.flush()
    hello = protocol.parse_hello(proc.stdout.readline())
    return proc, hello["port"]


def _request(conn, message: dict) -> dict:
    conn.send_bytes(protocol.encode(message))
    return protocol.decode(conn.recv_bytes())


@pytest.fixture(scope="module")
def backend():
    key = secrets.token_bytes(protocol.AUTHKEY_BYTES)
    proc, port = _start_backend(key)
    yield proc, port, key
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(10)


def test_wrong_key_is_refused_and_right_key_still_works(backend):
    proc, port, key = backend
    with pytest.raises(AuthenticationError):
        Client((protocol.HOST, port), authkey=secrets.token_bytes(32))
    assert proc.poll() is None, "a refused client must not take the server down"
    with Client((protocol.HOST, port), authkey=key) as conn:
        reply = _request(conn, {"type": "ping", "id": 1})
        assert reply == {"type": "result", "id": 1, "pong": True, "protocol": protocol.PROTOCOL_VERSION}
        # While Blender is connected: a wrong key is still refused at once, a second session is turned away.
        with pytest.raises(AuthenticationError):
            Client((protocol.HOST, port), authkey=secrets.token_bytes(32))
        with Client((protocol.HOST, port), authkey=key) as second:
            busy = protocol.decode(second.recv_bytes())
            assert busy["type"] == "error" and "another Blender" in busy["message"]
        assert _request(conn, {"type": "ping", "id": 2})["pong"] is True


def test_status_capabilities_and_errors_are_json_replies(backend):
    proc, port, key = backend
    with Client((protocol.HOST, port), authkey=key) as conn:
        status = _request(conn, {"type": "status", "id": 7})
        assert status["type"] == "result" and status["id"] == 7
        assert status["protocol"] == protocol.PROTOCOL_VERSION and status["torch"]
        assert isinstance(status["torch_cuda_available"], bool)
        caps = _request(conn, {"type": "capabilities", "id": 8})
        assert caps["audio_driven"] is False and caps["valence_arousal"] is True and len(caps["emotions"]) == 8
        va = _request(conn, {"type": "va_to_emotion", "id": 11, "valence": 0.8, "arousal": 0.3})
        assert va["type"] == "result" and len(va["weights"]) == 8 and 0 < va["intensity"] <= 1
        assert va["weights"][5] == max(va["weights"])  # pleasant, mildly aroused: happy
        bad_va = _request(conn, {"type": "va_to_emotion", "id": 12, "valence": "x"})
        assert bad_va["type"] == "error" and "valence" in bad_va["message"]
        unknown = _request(conn, {"type": "fly", "id": 9})
        assert unknown["type"] == "error" and "fly" in unknown["message"]
        conn.send_bytes(b"\x80 not json")
        bad = protocol.decode(conn.recv_bytes())
        assert bad["type"] == "error" and "JSON" in bad["message"]
        # A bad shot is answered with the field at fault, from the worker thread.
        conn.send_bytes(protocol.encode({"type": "render_shot", "id": 10, "spec": {"version": 1}}))
        err = protocol.decode(conn.recv_bytes())
        assert err["type"] == "error" and err["id"] == 10 and "'fps'" in err["message"]


def test_server_exits_when_stdin_closes():
    proc, _ = _start_backend(secrets.token_bytes(32))
    proc.stdin.close()
    assert proc.wait(10) == 0


def test_bad_authkey_line_is_a_clear_error():
    proc = subprocess.run(
        [sys.executable, "-m", "emo_backend.server"], input="not-hex\n", capture_output=True, text=True, cwd=REPO,
        timeout=60,
    )
    assert proc.returncode != 0 and "auth key" in proc.stderr


def test_shutdown_request_ends_the_process():
    key = secrets.token_bytes(32)
    proc, port = _start_backend(key)
    with Client((protocol.HOST, port), authkey=key) as conn:
        assert _request(conn, {"type": "shutdown", "id": 1})["type"] == "result"
    assert proc.wait(10) == 0


def test_render_streams_progress_and_cancel_is_answered_while_it_runs(monkeypatch, tmp_path):
    """The worker thread: progress streams, ping and cancel are answered mid-render, the render ends 'cancelled'."""
    started = threading.Event()

    def slow_render(spec, progress, cancel, only_frames=None):
        for k, frame in enumerate(spec.frames, 1):
            started.set()
            deadline = time.monotonic() + 5
            while not cancel() and time.monotonic() < deadline and k > 1:
                time.sleep(0.01)
            if cancel():
                return shot.ShotResult(frames=list(spec.frames)[: k - 1], rendered=[], skipped=[], cancelled=True)
            progress(k, spec.num_frames, frame)
        return shot.ShotResult(frames=list(spec.frames), rendered=list(spec.frames), skipped=[])

    monkeypatch.setattr(shot, "render_shot", slow_render)
    key = secrets.token_bytes(32)
    srv = server.Server(key)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    spec = json.loads((REPO / "tests" / "data" / "shot_minimal.json").read_text())
    spec["output"]["folder"] = str(tmp_path)
    try:
        with Client((protocol.HOST, srv.port), authkey=key) as conn:
            conn.send_bytes(protocol.encode({"type": "render_shot", "id": 1, "spec": spec}))
            first = protocol.decode(conn.recv_bytes())
            assert first == {"type": "progress", "id": 1, "done": 1, "total": 3, "frame": 1}
            busy = _request(conn, {"type": "render_frame", "id": 2, "spec": spec, "frame": 1})
            assert busy["type"] == "error" and "still running" in busy["message"]
            assert _request(conn, {"type": "ping", "id": 3})["pong"] is True
            conn.send_bytes(protocol.encode({"type": "cancel", "id": 4}))
            replies = [protocol.decode(conn.recv_bytes()) for _ in range(2)]
            by_id = {r["id"]: r for r in replies}
            assert by_id[4] == {"type": "result", "id": 4, "cancelling": True}
            assert by_id[1]["type"] == "cancelled" and by_id[1]["frames"] == [1]
    finally:
        srv.shutdown()
    thread.join(5)
    assert not thread.is_alive(), "shutdown must end the accept loop"


def test_protocol_refuses_non_json_values():
    with pytest.raises(ValueError):
        protocol.encode({"type": "progress", "done": float("nan")})
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(b"[1, 2]")
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_hello('{"emosplat_backend": 999, "port": 1}')
    assert protocol.parse_hello(protocol.hello_line(5, 6))["port"] == 5
