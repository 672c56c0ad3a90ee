#!/usr/bin/env bash
# Reproduce the paper's Table 1 layout on the offline datasets and write docs/results.md.
# Resumable: finished runs are skipped, an interrupted one resumes from its last checkpoint.
#
#   bash scripts/reproduce_table.sh                          # the committed CPU table (see docs/results.md)
#   bash scripts/reproduce_table.sh --scale gpu --datasets landscapes,animals,interiors,illustrations \
#        --schemes pix2pix,cycle_gan --arms all --seeds 0,1 --root runs/table-gpu   # the full grid on a GPU
#
# Arguments go to `python -m experiments.table1` (see --help); without any, the committed run.
set -euo pipefail
source "$(dirname "$0")/_env.sh"
cd "$REPO"
advseg assets fetch hed-bsds500 photos fid-inception
if [ "$#" -eq 0 ]; then
  set -- --scale cpu-small --datasets landscapes --schemes pix2pix --arms baseline,binary-soft,binary-hard \
         --seeds 0,1 --segmenter deeplab-voc --threads 1
fi
exec "$PY" -m experiments.table1 "$@"  # from the repository root: experiments/ is not installed
