load "common.gp"
set output "transfer." . fmt
set title "Transferring every task of a cgroup (Engine::transfer)"
set xlabel "tasks in the cgroup"
set ylabel "ns per task (median)"
set format x "10^{%L}"
set xrange [500:2000000]
plot data."/transfer.dat" u 1:2 w lp lw 2 pt 7 t "v1 pids hierarchy", \
     ""                  u 1:3 w lp lw 2 pt 5 t "default hierarchy, memory enabled"
