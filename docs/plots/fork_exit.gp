load "common.gp"
set output "fork_exit." . fmt
set title "Fork + exit as the number of processes grows (engine vs the old mm->owner scheme)"
set xlabel "processes in the engine"
set ylabel "ns per operation (median)"
set format x "10^{%L}"
set xrange [500:2000000]
set format y "10^{%L}"
plot data."/fork_exit.dat" u 1:2 w lp lw 2 pt 7 t "cgcore: fork + exit", \
     ""                   u 1:3 w lp lw 2 pt 5 t "cgcore: fork, thread, leader exits first", \
     ""                   u 1:4 w lp lw 1 pt 6 dt 2 t "mm->owner model: fork + exit", \
     ""                   u 1:5 w lp lw 2 pt 4 dt 2 t "mm->owner model: leader exits first (next-owner walk)"
