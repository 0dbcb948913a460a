"""HTTP by hand, for what clients cannot do: announce a huge body and send none of it, or
send header bytes no client would."""
import socket
from typing import Union


def status_of_raw(host: str, port: int, request: bytes, timeout: float = 10.0) -> int:
    """The status a server answers to the bytes of `request`, sent as they are."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = connection.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def status_of_announced_body(host: str, port: int, method: str, path: str,
                             length: Union[int, str],
                             timeout: float = 10.0, extra: str = "") -> int:
    """The status a server answers to a request that announces `length` body bytes, before
    any of them is sent: a server that reads the body first never answers in time."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n".encode()
        )
        head = b""
        while b"\r\n" not in head:
            chunk = connection.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])
