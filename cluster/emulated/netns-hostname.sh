#!/usr/bin/env bash
# Runs COMMAND with this UTS namespace's hostname set to HOST: "netns-hostname.sh HOST COMMAND...".
hostname "$1" && shift && exec "$@"
