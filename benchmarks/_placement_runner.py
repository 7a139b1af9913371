"""Run OpenStack Placement (wsgiref, noauth2, sqlite) for ``bench placement``.

Executed with the Placement venv's interpreter, not ours:
``python _placement_runner.py CONF_DIR``. Prints ``READY placement
127.0.0.1:PORT`` once listening; one process, one thread, like the figures
quoted in issue 6.
"""

import os
import sys

os.environ["OS_PLACEMENT_CONFIG_DIR"] = sys.argv[1]

from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: E402


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # one line per request would dominate the run
        pass


from placement.wsgi import init_application  # noqa: E402

app = init_application()
server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
print(f"READY placement 127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
