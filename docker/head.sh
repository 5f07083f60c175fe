#!/bin/sh
# The head: migrate the store, start the Ray head, then serve the API and run studies on the cluster.
# Configuration comes only from the environment (see docker/README.md).
set -eu
: "${GUIDETUNE_DATABASE_URL:?set GUIDETUNE_DATABASE_URL, e.g. postgresql://guidetune:PASSWORD@postgres:5432/guidetune}"
RAY_PORT="${RAY_PORT:-6379}"
guidetune db upgrade
ray start --head --port "$RAY_PORT" --num-cpus "${HEAD_NUM_CPUS:-0}" \
    --object-store-memory "${RAY_OBJECT_STORE_BYTES:-500000000}" --include-dashboard false --disable-usage-stats
exec guidetune serve --host "${GUIDETUNE_HOST:-0.0.0.0}" --port "${GUIDETUNE_PORT:-8321}" \
    --ray-address "127.0.0.1:$RAY_PORT" --max-studies "${GUIDETUNE_MAX_STUDIES:-2}"
