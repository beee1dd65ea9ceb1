#!/bin/sh
# Resizes the next image: a stand-in that says which pod did the work.
set -e
echo "$HOSTNAME: resized an image"
sleep 0.2
