# gunicorn settings for static-gate.
#
# Start from this file when gunicorn serves the gate behind nginx or another
# reverse proxy.  Edit the paths marked EDIT, then run:
#
#   STATIC_GATE_CONFIG=/srv/reports/gate.toml \
#     /srv/reports/.venv/bin/gunicorn -c /srv/reports/gunicorn.conf.py
#
# Check it: curl -sI http://127.0.0.1:8000/ answers 303 to /_gate/login.

import multiprocessing

wsgi_app = "static_gate.wsgi:application"

# Listen on loopback only: the reverse proxy in front is the one that faces
# the network, and [proxy] trusted in gate.toml must name its address.
bind = "127.0.0.1:8000"

# Processes: reading a report costs little CPU, but each sign-in runs one
# argon2id check (about 64 MiB and 50 ms).  Two workers per core keep both
# cores busy; the gate itself bounds checks per worker ([throttle]
# concurrent_checks), so sign-in floods cannot take all memory.
workers = 2 * multiprocessing.cpu_count()

# Threads: gthread workers serve several downloads at once per process, which
# matters for large files when the gate sends them itself (offload = "none").
worker_class = "gthread"
threads = 4

# Load the configuration in each worker after the fork, never in the master:
# the state store's SQLite connections must not cross a fork.
preload_app = False

# timeout restarts a worker that stops answering the master.  A gthread
# worker keeps answering while its threads send files, so a long download
# is not cut; a sync worker would be killed in the middle of one.
# graceful_timeout: how long a reload or stop waits for running requests.
timeout = 60
graceful_timeout = 30
keepalive = 5

# Log the signed-in user with each request (the gate sets REMOTE_USER).
accesslog = "-"
access_log_format = '%(h)s %({REMOTE_USER}e)s "%(r)s" %(s)s %(b)s %(L)ss'
errorlog = "-"

# The gate's own lines (start-up, and the audit log: each sign-in, sign-out
# and refusal) go through Python's logging, which gunicorn configures only
# for itself: without this, INFO lines such as every sign-in are lost.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING", "handlers": ["gate"]},
    "loggers": {"static_gate": {"level": "INFO"}},
    "handlers": {
        "gate": {
            "class": "logging.StreamHandler",
            "formatter": "gate",
            "stream": "ext://sys.stderr",
        }
    },
    "formatters": {
        "gate": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        }
    },
}

# gunicorn 25.1 and later also open a control socket for gunicornc, by
# default in $XDG_RUNTIME_DIR or ~/.gunicorn: one path shared by every
# gunicorn of that user, where the newest one replaces the others' socket,
# and a read-only place under the unit's ProtectSystem=strict.  The gate
# needs none of it; reloads go through SIGHUP.  Older gunicorn versions
# skip names they do not know in a configuration file.
control_socket_disable = True
