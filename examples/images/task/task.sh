#!/bin/sh
# One unit of work, with its entrypoint's own exit code: 0 when done.
echo "$HOSTNAME: task done"
