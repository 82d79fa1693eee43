#!/usr/bin/env bash
# Plots from the CSVs the examples write, as PNG and SVG (gnuplot; installs
# Debian's gnuplot-nox with apt-get when gnuplot is missing).
#
#   tools/plot.sh loss OUT RUN...        training + validation loss against tokens;
#                                        RUN is a train --out folder or its log.csv
#   tools/plot.sh positions OUT CSV...   loss at each context position (eval --csv)
#   tools/plot.sh scaling OUT CSV        loss against parameters, log-log, with the
#                                        fitted power law (rows from eval --append)
#
# OUT is a path without extension: OUT.png and OUT.svg are written, and their
# paths printed. A label is the run's folder name (RUN=LABEL sets one).
# TITLE="..." in the environment replaces the default title.
# Example: tools/plot.sh loss out/loss out/lmu-55k out/lmu-200k
set -eu
here=$(cd "$(dirname "$0")" && pwd)
me=plot
die() { echo "$me: $*" >&2; exit 1; }
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

[ $# -ge 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; } && { usage; exit 0; }
[ $# -ge 3 ] || { usage >&2; die "want a kind (loss, positions, scaling), an output and input files"; }
kind=$1 out=$2; shift 2
case "$kind" in loss|positions|scaling) ;; *) die "unknown plot '$kind' (loss, positions, scaling)";; esac
out=${out%.png}; out=${out%.svg}

if ! command -v gnuplot >/dev/null; then
    echo "$me: installing gnuplot-nox with apt-get" >&2
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq gnuplot-nox >/dev/null ||
        die "cannot install gnuplot-nox; install gnuplot and run again"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lmu-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
labels=() n=0 npts=0

# input ARG: sets file and label ("path=label" or the folder's name)
input() {
    file=${1%%=*} label=
    [ "$file" != "$1" ] && label=${1#*=}
    [ -d "$file" ] && file=$file/log.csv
    [ -f "$file" ] || die "cannot open $file: No such file"
    [ -n "$label" ] || label=$(basename "$(dirname "$file")")
    [ "$label" = . ] && label=$(basename "$file" .csv)
    label=${label// /_}
}

case "$kind" in
loss)
    for a in "$@"; do
        input "$a"; n=$((n + 1)); labels+=("$label")
        head -n 1 "$file" | grep -q '^step,tokens,loss,lr,grad_norm,val_loss' ||
            die "$file is not a train log (want the header step,tokens,loss,...)"
        # raw loss, and an exponential moving average over about rows/40 steps
        # (NaN steps are skipped); validation rows separately
        awk -F, -v out="$tmp/train_$n.dat" -v vout="$tmp/val_$n.dat" '
            NR == 1 { next }
            { rows[NR] = $0 }
            END {
                span = (NR - 1) / 40; if (span < 1) span = 1
                a = 2 / (span + 1); e = ""
                for (r = 2; r <= NR; r++) {
                    split(rows[r], f, ",")
                    if (f[3] != "nan" && f[3] != "-nan" && f[3] != "") {
                        e = (e == "") ? f[3] : (1 - a) * e + a * f[3]
                        print f[2], f[3], e > out
                    }
                    if (f[6] != "") print f[2], f[6] > vout
                }
                close(out); close(vout)
            }' "$file"
        [ -s "$tmp/train_$n.dat" ] || die "$file has no training rows"
        [ -f "$tmp/val_$n.dat" ] || echo "0 NaN" >"$tmp/val_$n.dat"
    done
    title=${TITLE:-"Training loss"} ;;
positions)
    for a in "$@"; do
        input "$a"; n=$((n + 1)); labels+=("$label")
        head -n 1 "$file" | grep -q '^position,loss' || die "$file is not an eval --csv file"
        # mean over positions within -20%..+25% of each one: smooth on the log axis
        awk -F, -v out="$tmp/pos_$n.dat" '
            NR > 1 { p[NR - 1] = $1 + 1; l[NR - 1] = $2; m = NR - 1 }
            END {
                for (i = 1; i <= m; i++) {
                    s = 0; c = 0
                    for (j = 1; j <= m; j++)
                        if (p[j] >= p[i] * 0.8 && p[j] <= p[i] * 1.25) { s += l[j]; c++ }
                    print p[i], l[i], s / c > out
                }
            }' "$file"
        [ -s "$tmp/pos_$n.dat" ] || die "$file has no rows"
    done
    title=${TITLE:-"Loss at each position of the context"} ;;
scaling)
    [ $# -eq 1 ] || die "scaling wants one results CSV (eval --append)"
    input "$1"
    head -n 1 "$file" | grep -q '^checkpoint,params,params_total,tokens,loss' ||
        die "$file is not an eval --append file"
    # label: the checkpoint's folder name; the last row per checkpoint wins
    awk -F, 'NR > 1 { n = split($1, p, "/"); lab = n > 1 ? p[n - 1] : p[n]
                      row[$1] = $2 " " $5 " " lab }
             END { for (k in row) print row[k] }' "$file" | sort -n >"$tmp/scaling.dat"
    n=$(wc -l <"$tmp/scaling.dat")
    [ "$n" -ge 1 ] || die "$file has no rows"
    # the power law is fitted when there are two model sizes or more
    npts=$(cut -d' ' -f1 "$tmp/scaling.dat" | sort -u | wc -l)
    title=${TITLE:-"Loss against model size"} ;;
esac

for fmt in png svg; do
    gnuplot -e "fmt='$fmt'; out='$out.$fmt'; dir='$here'; tdir='$tmp'; n=$n; npts=$npts" \
        -e "labels='${labels[*]:-}'; title='${title//\'/}'" "$here/plot_$kind.gp" 2>"$tmp/gnuplot.err" ||
        { cat "$tmp/gnuplot.err" >&2; die "gnuplot failed on $kind"; }
done
echo "$out.png"
echo "$out.svg"
