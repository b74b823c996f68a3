# Plots of beta_sweep (which runs this itself):
#   gnuplot -c examples/beta_sweep.gp results/beta_sweep.csv results/beta_sweep_error.png \
#     results/information_plane.png HY NVAL NTEST results/beta_sweep_summary.csv
# HY: H(Y) of the validation labels in bits; NVAL, NTEST: validation and test set sizes
# (for the binomial error bars of a single seed; default 10000).
# The runs' CSV, one row per beta and seed:
#   beta,log10_beta,val_error_pct,test_error_pct,izx_bits,izy_bits,val_ce_nats,
#   train_ce_nats,train_kl_bits,epochs,seconds,seed
# The summary, one row per beta over its seeds:
#   beta,log10_beta,seeds,val_error_mean,val_error_sd,val_error_min,val_error_max,
#   test_error_mean,test_error_sd,test_error_min,test_error_max,izx_mean,izx_sd,
#   izy_mean,izy_sd,val_ce_mean,val_ce_sd
csv = ARG1
err_out = ARG2
plane_out = ARG3
hy = ARG4 + 0.0
nval = (ARGC >= 5 ? ARG5 + 0 : 10000)
ntest = (ARGC >= 6 ? ARG6 + 0 : 10000)
sum = ARG7
set datafile separator ','

# ---- validation and test error against beta (the U of question 3 (c)) ----
# Left: every beta, log error axis: the mean over the seeds, and each run as a dot.
# Right: the same near the minimum, linear, with bars of +-1 standard deviation over the
# seeds, or with one seed the binomial standard error sqrt(p (1 - p) / n).
stats sum using 4 skip 1 nooutput name 'V'
stats sum using 8 skip 1 nooutput name 'T'
stats sum using 16 skip 1 nooutput name 'C'
stats sum using 3 skip 1 nooutput name 'N'
emin = (V_min < T_min ? V_min : T_min)
se(p, n) = 100 * sqrt((p / 100) * (1 - p / 100) / n)
bar(sd, p, n, k) = (k > 1 ? sd : se(p, n))
# a partial sweep may hold betas with fewer seeds than others: say so
seeds = (N_max > 1 ? (N_min < N_max ? sprintf('mean of %d to %d seeds', N_min, N_max) : \
        sprintf('mean of %d seeds', N_max)) : 'one seed')
set terminal pngcairo size 1200,520 font ',10'
set output err_out
set multiplot layout 1,2 title sprintf('libvib beta\_sweep: error against beta (S-sample prediction, %s)', seeds)
set logscale x 10
set format x '10^{%L}'
set xlabel 'beta'
set key below horizontal maxrows 1 width 2
set autoscale fix
set offsets graph 0.03, graph 0.03, graph 0.12, graph 0.05
set title 'all betas'
set logscale y
set ylabel 'error (%), log scale'
set ytics (0.1, 0.2, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 50, 100)
set mytics 10
set grid xtics ytics mytics
plot sum using 1:4 skip 1 with linespoints lw 2 pt 7 ps 1.0 lc 1 title 'validation (last 10,000 training images)', \
     sum using 1:8 skip 1 with linespoints lw 2 pt 5 ps 0.9 dt 2 lc 2 title 'test', \
     csv using 1:3 skip 1 with points pt 6 ps 0.5 lc 1 notitle, \
     csv using 1:4 skip 1 with points pt 4 ps 0.5 lc 2 notitle
set title (N_max > 1 ? (N_min > 1 ? 'near the minimum (linear; bars: +-1 s.d. over the seeds)' : \
           'near the minimum (linear; bars: +-1 s.d. over the seeds, one seed: binomial s.e.)') : \
           sprintf('near the minimum (linear; bars: +-1 binomial s.e., n = %d)', nval))
unset logscale y
set ytics autofreq
set mytics default
set grid xtics ytics nomytics
set ylabel 'error (%)'
set yrange [0.85 * emin : 1.9 * emin]
set offsets graph 0.03, graph 0.03, 0, 0
# the validation cross-entropy (nats), whose U is clearer than the error's
set y2label 'validation cross-entropy E_z[-log q(y|z)] (nats)'
set y2tics
set ytics nomirror
set y2range [0.85 * C_min : 2.5 * C_min]
plot sum using 1:4:(bar($5, $4, nval, $3)) skip 1 with yerrorlines lw 2 pt 7 ps 1.0 lc 1 title 'validation error', \
     sum using 1:8:(bar($9, $8, ntest, $3)) skip 1 with yerrorlines lw 2 pt 5 ps 0.9 dt 2 lc 2 title 'test error', \
     sum using 1:4:(sprintf('%.2f', $4)) skip 1 with labels offset 2.2,0.8 font ',8' notitle, \
     sum using 1:16 skip 1 axes x1y2 with linespoints lw 1.5 pt 9 ps 1.0 lc rgb '#888888' title 'validation CE (right)'
unset multiplot
unset y2label
unset y2tics
set ytics mirror
unset logscale
unset format
unset offsets
set autoscale
set ytics autofreq
set terminal pngcairo size 800,550 font ',10'
unset output

# ---- the information plane: I(Z;Y) against I(Z;X), coloured by log10 beta ----
# Left: every beta. Right: the top of the curve, where I(Z;Y) peaks at moderate beta.
stats sum using 14 skip 1 nooutput name 'Y'
ytop = Y_max - 0.25
stats sum using ($14 >= ytop ? $12 : NaN) skip 1 nooutput name 'X'
set terminal pngcairo size 1200,520 font ',10'
set output plane_out
set multiplot layout 1,2 title sprintf('libvib beta\_sweep: information plane (validation set, %s; grey: each run)', seeds)
set logscale x 10
set format x '10^{%L}'
set xlabel 'I(Z;X) upper bound: mean KL rate (bits), log scale'
set ylabel 'I(Z;Y) lower bound: H(Y) - CE (bits)'
set cblabel 'log_{10} beta'
set palette defined (0 '#3b4cc0', 1 '#8db0fe', 2 '#dddddd', 3 '#f49a7b', 4 '#b40426')
set grid
set key default
set offsets graph 0.05, graph 0.12, graph 0.08, graph 0.05
set arrow 1 from graph 0, first hy to graph 1, first hy nohead dt 2 lc rgb '#444444'
set label 1 sprintf('H(Y) = %.3f bits: the most I(Z;Y) can be', hy) at graph 0.02, first hy \
    offset 0,0.7 font ',9'
# labels on the betas that are powers of ten (all of them on the default grid)
is_decade(l) = abs(l - floor(l + 0.5)) < 1e-6
set title 'all betas'
set yrange [*:hy + 0.15]
unset colorbox
plot sum using 12:14 skip 1 with lines lc rgb '#999999' notitle, \
     csv using 5:6 skip 1 with points pt 6 ps 0.6 lc rgb '#999999' notitle, \
     sum using 12:14:2 skip 1 with points pt 7 ps 1.8 lc palette notitle, \
     sum using 12:14:(is_decade($2) ? sprintf('10^{%d}', int(floor($2 + 0.5))) : '') skip 1 \
         with labels offset 0,-1.2 font ',8' notitle
set title 'near the top'
set colorbox
set yrange [ytop : hy + 0.03]
set xrange [X_min / 2 : X_max * 2]
set offsets 0, 0, 0, 0
set label 1 at graph 0.02, first hy offset 0,-0.8
plot sum using 12:14 skip 1 with lines lc rgb '#999999' notitle, \
     csv using 5:6 skip 1 with points pt 6 ps 0.6 lc rgb '#999999' notitle, \
     sum using 12:14:2 skip 1 with points pt 7 ps 1.8 lc palette notitle, \
     sum using 12:14:(is_decade($2) ? sprintf('10^{%d}', int(floor($2 + 0.5))) : '') skip 1 \
         with labels offset 0,-1.2 font ',8' notitle
unset multiplot
unset output
