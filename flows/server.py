"""Prefect's temporary API server, out of reach of the terminal's Ctrl-C.

Without PREFECT_API_URL, a flow run starts Prefect's temporary server as a child process in
lorascope's process group. A terminal sends Ctrl-C (SIGINT) to the whole group, so the server
stopped at once, and lorascope, recording the interrupted run on it, hung retrying. Started
here instead, in a session of its own, it outlives the Ctrl-C; Prefect finds and uses it (one
server per port) and stops it when lorascope exits, as it stops its own."""

from __future__ import annotations

import functools
import subprocess
import types

from prefect.settings import PREFECT_API_URL


def start_temporary_server() -> None:
    """Start the temporary server now, unless PREFECT_API_URL names a server to use. Called
    by each command just before its flow, once its config is checked (a bad one fails fast)."""
    if PREFECT_API_URL.value():
        return
    from prefect.server.api import server

    class OwnSessionServer(server.SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            # Prefect's own command, launched with start_new_session: the one change needed
            # has no parameter, so its module sees a Popen that adds it, for this call only.
            module = server.subprocess
            server.subprocess = types.SimpleNamespace(  # type: ignore[assignment]
                Popen=functools.partial(module.Popen, start_new_session=True))
            try:
                return super()._run_uvicorn_command()
            finally:
                server.subprocess = module

    OwnSessionServer().start()
