# Plots of latent2d (which runs this itself): one panel per data file, each on its own
# autoscaled axes.
#   gnuplot -e "n=1; out='x.png'; names='0 1 2'; ellipses=0; dat1='x.dat'; ttl1='title'" \
#     examples/latent2d.gp
# n panels side by side from dat1..datn (titles ttl1..ttln). A data file holds one block
# per digit of "z1 z2" (posterior means), in the order of `names`, and with ellipses=1
# one more block per digit of 95% ellipses (one closed curve per test point).
nc = words(names)
cols = '#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf'
pts = '6 2 8 4 12 1 3 10 14 5'

set terminal pngcairo size (n == 1 ? 760 : 440 * n), (n == 1 ? 640 : 500) font ',10'
set output out
set xlabel 'z_1'
set ylabel 'z_2'
set grid
set key below horizontal
if (nc <= 4) { set key maxrows 1 }
set autoscale fix
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05
if (n > 1) {
    set multiplot layout 1, n title "libvib latent2d: posterior means of the test images, K = 2 (each panel on its own scale)"
}
do for [i = 1:n] {
    d = value(sprintf('dat%d', i))
    set title value(sprintf('ttl%d', i))
    if (ellipses) {
        set size ratio -1
        plot for [c = 1:nc] d index (c - 1) using 1:2 with points pt int(word(pts, c)) ps 0.75 \
                 lc rgb word(cols, c) title 'digit '.word(names, c), \
             for [c = 1:nc] d index (nc + c - 1) using 1:2 with lines lw 1.5 \
                 lc rgb word(cols, c) title (c == 1 ? '95% ellipses (5 per digit)' : '')
    } else {
        plot for [c = 1:nc] d index (c - 1) using 1:2 with points pt int(word(pts, c)) ps 0.75 \
                 lc rgb word(cols, c) title 'digit '.word(names, c)
    }
}
if (n > 1) {
    unset multiplot
}
unset output
