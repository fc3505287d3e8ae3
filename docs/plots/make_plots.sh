#!/usr/bin/env bash
# Regenerates the plots of docs/performance.md from a cgbench JSON file:
#   build/tools/cgbench --json /tmp/cgbench.json
#   docs/plots/make_plots.sh /tmp/cgbench.json        # SVG (default)
#   docs/plots/make_plots.sh /tmp/cgbench.json png    # PNG
# Needs python3 and gnuplot (Debian: apt-get install gnuplot-nox); neither is
# a build dependency of cgcore. The .dat files extracted from the JSON are
# kept in docs/plots/data/ beside the plots.
set -euo pipefail
json=$(realpath "${1:?usage: make_plots.sh RESULTS.json [svg|png]}")
fmt=${2:-svg}
cd "$(dirname "$0")"
mkdir -p data
python3 extract.py "$json" data
cp "$json" data/results.json
for gp in fork_exit move_threads read_procs transfer; do
  gnuplot -e "data='data'; fmt='$fmt'" "$gp.gp"
done
ls -l ./*."$fmt"
