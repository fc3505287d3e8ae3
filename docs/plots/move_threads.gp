load "common.gp"
set output "move_threads." . fmt
set title "Moving a process of N threads: cost per thread"
set xlabel "threads in the process"
set ylabel "ns per thread (median)"
plot data."/move_threads.dat" u 1:2 w lp lw 2 pt 7 t "cgcore engine, v1 pids", \
     ""                      u 1:3 w lp lw 2 pt 6 dt 2 t "kernel, v1 pids cgroup.procs", \
     ""                      u 1:4 w lp lw 2 pt 5 t "cgcore engine, default hierarchy", \
     ""                      u 1:5 w lp lw 2 pt 4 dt 2 t "kernel, unified cgroup.procs"
