#!/bin/sh
# Every XBIT container starts here: empty the Prometheus multiprocess directory (values of a previous
# run must not be summed into this one — prometheus_client requires a clean directory per process
# group), then become the process named by the command.
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
fi
exec "$@"
