# Loss against parameter count on log-log axes with the fitted power law
# L = a N^b (the paper's Figure 3). Called by tools/plot.sh: fmt, out, title,
# tdir with scaling.dat (params loss label), npts.
load dir."/plot_style.gp"
set title title
set xlabel "parameters N (non-embedding)"
set ylabel "loss (nats per token)"
set logscale xy
set format x "%.0s%c"
set key top right
data = tdir."/scaling.dat"
# log axes cover whole decades by default, which flattens a few points
# into a line: fit the axes to the data instead, with round tick values
set autoscale xfix
set autoscale yfix
set offsets graph 0.12, graph 0.12, graph 0.2, graph 0.12
set xtics add ("2k" 2e3, "5k" 5e3, "20k" 2e4, "50k" 5e4, "200k" 2e5, "500k" 5e5, \
               "2M" 2e6, "5M" 5e6, "20M" 2e7, "50M" 5e7)
stats data using 2 nooutput
span = STATS_max - STATS_min
span = span > 0 ? span : STATS_max * 0.2
raw = span / 4
mag = 10 ** floor(log10(raw))
ystep = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag
set ytics ()
set mytics default
do for [k = floor((STATS_min - span) / ystep) : ceil((STATS_max + span) / ystep)] {
    if (k * ystep > 0) { set ytics add (sprintf("%g", k * ystep) k * ystep) }
}
if (npts >= 2) {
    set fit quiet
    set fit logfile "/dev/null"
    la = 1; b = -0.1
    g(x) = la + b * x
    fit g(x) data using (log($1)):(log($2)) via la, b
    a = exp(la)
    f(x) = a * x**b
    fitlabel = sprintf("fit: L = %.3g · N^(%.3f)", a, b)
    plot f(x) with lines lw 2 dt 2 lc rgb "#888888" title fitlabel, \
         data using 1:2 with points pt 7 ps 1.8 lc rgb color(1) title "measured", \
         data using 1:2:3 with labels left offset char 0.8,0.9 font ",12" tc rgb "#333333" notitle
} else {
    plot data using 1:2 with points pt 7 ps 1.8 lc rgb color(1) title "measured", \
         data using 1:2:3 with labels left offset char 0.8,0.9 font ",12" tc rgb "#333333" notitle
}
