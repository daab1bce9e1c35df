#!/usr/bin/env bash
# make demo: sample corpus -> ace index -> queries -> ace ingest of a second batch -> ace audit
# -> versions. Runs on Prefect's embedded API: no server, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
ACE=.venv/bin/ace
STORE=demo-store
step() { printf '\n== %s\n' "$*"; }

rm -rf "$STORE" demo-corpus demo-batch
step "sample corpus of the scenes world (48 images, 24 audio clips, 16 videos, 6 captions each)"
$ACE sample-corpus demo-corpus --seed 7

step "tiny aligned encoders (trained by the project on the scenes world; reused when present)"
$ACE tiny-encoders models/tiny
TINY=(--image-model ace-tiny-clip --image-weights models/tiny/ace-tiny-clip.safetensors
      --audio-model ace-tiny-clap --audio-checkpoint models/tiny/ace-tiny-clap.safetensors)

step "ace index: embed -> semantic IDs -> train the generative retriever -> evaluate -> publish"
$ACE index demo-corpus --store "$STORE" "${TINY[@]}"

step "queries (the default fused path: generated semantic IDs and dense candidates, weights fit per version)"
for q in "a big red circle at the top left and a small blue star in the middle" \
         "a loud high rising sweep, then a quiet low tone" \
         "a blue square moving right quickly"; do
  $ACE query "$q" --store "$STORE" -k 3
done

step "ace ingest: a second batch (existing IDs frozen, retriever fine-tuned)"
$ACE sample-corpus demo-batch --seed 8 --images 5 --audio 2 --videos 2
rm demo-batch/captions.jsonl  # tonight's uploads come without captions
$ACE ingest demo-batch --store "$STORE"

step "caption-less new items (demo-batch/audio/), through the text towers"
$ACE query "a quiet high-pitched tone, then a loud deep chord" --store "$STORE" -k 3 --path zero-shot
echo "(new-item recall after a caption-less ingest is measured in docs/BENCHMARKS.md)"

step "ace audit: identifier diff of the new version against its parent"
$ACE audit --store "$STORE"

step "ace sources: the folders the items come from (every result names its file)"
$ACE sources list --store "$STORE"

step "ace versions"
$ACE versions --store "$STORE"

printf '\npublished versions are under %s/versions; LATEST is %s\n' "$STORE" "$(cat "$STORE/LATEST")"
