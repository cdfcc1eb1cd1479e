# The entry file that Apache's mod_wsgi loads for static-gate.
#
# Copy it to /srv/reports/app/static-gate.wsgi, the file that WSGIScriptAlias
# names in static-gate.conf, and change the configuration path below if
# yours lives elsewhere.  Set it here, not with SetEnv: SetEnv reaches each
# request's environ only, while static_gate.wsgi reads os.environ once, when
# the daemon process imports it.

import logging
import os
import sys

os.environ.setdefault("STATIC_GATE_CONFIG", "/srv/reports/gate.toml")

# static-gate never configures logging; the entry point does.  mod_wsgi
# writes a daemon process's standard error to the virtual host's ErrorLog,
# so sign-ins, sign-outs and refusals (with the user's name) land there.
# Without a handler only warnings would, through Python's last resort.
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
_logger = logging.getLogger("static_gate")
_logger.addHandler(_handler)
_logger.setLevel(logging.INFO)

from static_gate.wsgi import application  # noqa: E402
