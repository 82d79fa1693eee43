# Training and validation loss against tokens seen, for one or more runs.
# Called by tools/plot.sh with: fmt, out, n (runs), title, and per run i the
# files dir."/train_".i.".dat" (tokens loss smoothed) and dir."/val_".i.".dat"
# (tokens val_loss), and label(i) from the word list `labels`.
load dir."/plot_style.gp"
label(i) = word(labels, i)
set title title
set xlabel "tokens seen"
set ylabel "loss (nats per token)"
set format x "%.0s%c"
set xrange [0:*]
set key top right
plot for [i=1:n] tdir."/train_".i.".dat" using 1:2 with lines lw 1 lc rgb faint(i) notitle, \
     for [i=1:n] tdir."/train_".i.".dat" using 1:3 with lines lw 2.5 lc rgb color(i) \
         title label(i)." train (smoothed)", \
     for [i=1:n] tdir."/val_".i.".dat" using 1:2 with linespoints lw 2 dt 2 pt 7 ps 1.1 \
         lc rgb color(i) title label(i)." validation"
