"""Start the Gradio app in-process on loopback for the app and browser tests."""

from __future__ import annotations

import contextlib
import socket

import torch


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app():
    """Yield the URL of the app (``app.demo``) served on 127.0.0.1 at a free port."""
    import app

    threads = torch.get_num_threads()
    torch.set_num_threads(app.THREADS)
    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **app.LAUNCH_KWARGS)
    url = f"http://127.0.0.1:{port}/"
    try:
        yield url
    finally:
        app.demo.close()
        torch.set_num_threads(threads)
