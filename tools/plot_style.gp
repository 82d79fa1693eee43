# Shared look of every plot (loaded by tools/plot_*.gp; set fmt and out first).
# fmt: "png" (pngcairo, 1200x750) or "svg"; out: the output path.
if (fmt eq "svg") {
    set terminal svg size 960,600 dynamic noenhanced font "Helvetica,15" background rgb "white"
} else {
    set terminal pngcairo size 1200,750 noenhanced font "Helvetica,15" background rgb "white"
}
set output out
set border 3 lw 1.2 lc rgb "#555555"
set tics nomirror out scale 0.6 textcolor rgb "#333333"
set grid xtics ytics mxtics mytics lc rgb "#e4e4e4" lw 1 dt 1, lc rgb "#f2f2f2" lw 1 dt 1
set key top right Left reverse opaque box lc rgb "#cccccc" samplen 2.5 spacing 1.15 width 1
set title font "Helvetica,17"
set lmargin 11
set rmargin 4
# one color per run (tab10)
colors = "#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #17becf"
color(i) = word(colors, (i - 1) % 8 + 1)
faint(i) = "#B0" . color(i)[2:7]   # the same color, mostly transparent
