"""A streamed request on a raw socket: for tests that must see the events arrive, or leave mid-stream."""

import json
import socket


def open_raw_stream(host, port, path, headers, body, timeout=10):
    """POST ``body`` as JSON; return (socket, bytes received) once the first partial image event is in."""
    payload = json.dumps(body)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.sendall((f"POST {path} HTTP/1.1\r\n{lines}Content-Type: application/json\r\n"
                  f"Content-Length: {len(payload)}\r\n\r\n{payload}").encode())
    received = b""
    while b"partial_image" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return sock, received
