# Training step time against sequence length, log-log, with n log n and n^2
# guide lines: the LMU's FFT convolution against the transformer's
# attention. Called by tools/bench_model.sh:
#   gnuplot -e 'fmt="png"; out="x.png"; lmu="lmu.csv"; tf="tf.csv"; tdir="tools"; title="..."' \
#           tools/bench_model_scaling.gp
# lmu, tf: CSVs of bench_train --scaling (preset,n,seconds_per_step,...).
# Each guide line goes through the largest-n point of its curve, where the
# fixed per-step costs matter least.
load tdir."/plot_style.gp"
set datafile separator ","
set title title
set xlabel "sequence length n (tokens, batch 1)"
set ylabel "seconds per training step"
set logscale xy 2
set format x "%.0f"
set format y "%g"
set logscale y 10
set ytics ("0.01" 0.01, "0.02" 0.02, "0.05" 0.05, "0.1" 0.1, "0.2" 0.2, "0.5" 0.5, "1" 1, "2" 2, "5" 5, "10" 10, "20" 20, "50" 50, "100" 100, "200" 200, "500" 500)
set xtics (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
set key top left
set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05

stats lmu using 2 nooutput
n_l = STATS_max
stats lmu using ($2 == n_l ? $3 : 1/0) nooutput
t_l = STATS_max
stats tf using 2 nooutput
n_t = STATS_max
stats tf using ($2 == n_t ? $3 : 1/0) nooutput
t_t = STATS_max
stats lmu using 2 nooutput
n_lo = STATS_min
stats lmu using 3 nooutput
y_lo = STATS_min
y_hi = STATS_max
stats tf using 3 nooutput
y_lo = STATS_min < y_lo ? STATS_min : y_lo
y_hi = STATS_max > y_hi ? STATS_max : y_hi
# the data decide the y range; the guide lines may leave it
set yrange [y_lo / 2 : y_hi * 2]

nlogn(x) = t_l * (x * log(x)) / (n_l * log(n_l))
nsq(x) = t_t * (x / n_t) ** 2
set xrange [n_lo / 1.2 : (n_l > n_t ? n_l : n_t) * 1.2]
set samples 200

plot nlogn(x) with lines lw 1.5 dt 2 lc rgb color(1) title "n log n (through the LMU's last point)", \
     nsq(x) with lines lw 1.5 dt 2 lc rgb color(2) title "n^2 (through the transformer's last point)", \
     lmu using 2:3 every ::1 with linespoints lw 2.5 pt 7 ps 1.4 lc rgb color(1) title lmu_label, \
     tf using 2:3 every ::1 with linespoints lw 2.5 pt 5 ps 1.4 lc rgb color(2) title tf_label
