#!/bin/sh
# A worker node: joins the head's Ray cluster and runs trial groups until it is stopped.
# Configuration comes only from the environment (see docker/README.md).
set -eu
: "${GUIDETUNE_RAY_ADDRESS:?set GUIDETUNE_RAY_ADDRESS to the head, e.g. head:6379}"
exec ray start --address "$GUIDETUNE_RAY_ADDRESS" --block --num-cpus "${WORKER_NUM_CPUS:-1}" \
    --num-gpus "${WORKER_NUM_GPUS:-0}" --object-store-memory "${RAY_OBJECT_STORE_BYTES:-500000000}" --disable-usage-stats
