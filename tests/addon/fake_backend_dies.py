"""A backend that speaks the real handshake, starts a render, sends one progress message and dies (exit 3).

Used to test the add-on's error path: a backend crash mid-bake must end in an
error message in Blender, never a hang.
"""

import json
import os
import sys
from multiprocessing.connection import Listener

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from emo_backend import protocol  # noqa: E402

key = bytes.fromhex(sys.stdin.readline().strip())
listener = Listener((protocol.HOST, 0), authkey=key)
print(protocol.hello_line(listener.address[1], os.getpid()), flush=True)
conn = listener.accept()
while True:
    message = protocol.decode(conn.recv_bytes())
    if message["type"] in ("render_shot", "render_frame"):
        conn.send_bytes(protocol.encode({"type": "progress", "id": message["id"], "done": 1, "total": 3, "frame": 1}))
        print("simulated crash in the middle of a render", file=sys.stderr, flush=True)
        os._exit(3)
    conn.send_bytes(json.dumps({"type": "result", "id": message["id"]}).encode())
