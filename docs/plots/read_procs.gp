load "common.gp"
set output "read_procs." . fmt
set title "Reading cgroup.procs of a cgroup of N processes"
set xlabel "processes in the cgroup"
set ylabel "us per read (open + read + close, median)"
set xrange [700:14000]
plot data."/read_procs.dat" u 1:2 w lp lw 2 pt 6 dt 2 t "kernel, v1 pids", \
     ""                    u 1:3 w lp lw 2 pt 7 t "cgcorefs mount, v1 pids", \
     ""                    u 1:4 w lp lw 1 pt 5 t "cgcore file layer in process, v1", \
     ""                    u 1:5 w lp lw 2 pt 4 dt 2 t "kernel, unified", \
     ""                    u 1:6 w lp lw 2 pt 9 t "cgcorefs mount, unified", \
     ""                    u 1:7 w lp lw 1 pt 11 t "cgcore file layer in process, unified"
