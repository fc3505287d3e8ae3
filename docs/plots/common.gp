# Shared settings of the cgbench plots. Callers set `data` (the directory of
# the .dat files) and `fmt` ("svg" or "png").
if (fmt eq "png") { set terminal pngcairo size 800,500 font ",10" } else { set terminal svg size 800,500 dynamic font "sans,11" }
set logscale xy
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key top left box opaque
set datafile missing "NaN"
