#!/usr/bin/env bash
# make demo: sample corpus -> embed (extended as the pipeline grows). No server, no network.
set -euo pipefail
ACE=.venv/bin/ace
STORE=demo-store
rm -rf "$STORE" demo-corpus
$ACE sample-corpus demo-corpus --seed 7
$ACE embed demo-corpus --store "$STORE"
