#!/bin/sh
# Migrates one shard of 50: the one its pod's index names. The recipe passes it as
# SHARD_ID="$(JOB_COMPLETION_INDEX)", which stays unexpanded on a cluster as here: the Job
# controller appends JOB_COMPLETION_INDEX after the container's own variables, and $(VAR)
# only refers to earlier ones. So the index is read directly when SHARD_ID is no number.
set -e
case "$SHARD_ID" in
  '' | *[!0-9]*) shard=$JOB_COMPLETION_INDEX ;;
  *) shard=$SHARD_ID ;;
esac
first=$((shard * 1000))
echo "shard $shard: migrated items $first to $((first + 999))"
