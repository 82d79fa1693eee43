# Loss at each position of the context (the paper's Figure 4), one line per
# evaluation. Called by tools/plot.sh: fmt, out, n, title, labels, tdir with
# pos_i.dat (position+1 loss smoothed).
load dir."/plot_style.gp"
label(i) = word(labels, i)
set title title
set xlabel "position in the context (tokens)"
set ylabel "loss (nats per token)"
set logscale x 2
set format x "%g"
set key top right
plot for [i=1:n] tdir."/pos_".i.".dat" using 1:2 with lines lw 1 lc rgb faint(i) notitle, \
     for [i=1:n] tdir."/pos_".i.".dat" using 1:3 with lines lw 2.5 lc rgb color(i) title label(i)
