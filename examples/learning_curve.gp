# Learning curve of train_mnist: gnuplot -c examples/learning_curve.gp results/x.csv results/x.png
# Columns: epoch,seconds,lr,loss,ce_nats,kl_bits,izy_lower_bits,test_error_1_pct,test_error_s_pct
csv = ARG1
out = ARG2
set datafile separator ','
set terminal pngcairo size 1100,450 font ',10'
set output out
set multiplot layout 1,2 title 'libvib train\_mnist'
set key top right
set grid
set xlabel 'epoch'
set ylabel 'test error (%)'
set logscale y
plot csv using 1:8 skip 1 with linespoints pt 7 ps 0.4 title '1 sample', \
     csv using 1:9 skip 1 with linespoints pt 5 ps 0.4 title 'S samples (--samples)'
unset logscale y
set ylabel 'cross-entropy (nats)'
set y2label 'KL (bits)'
set y2tics
set ytics nomirror
plot csv using 1:5 skip 1 axes x1y1 with lines lw 2 title 'train cross-entropy (nats)', \
     csv using 1:6 skip 1 axes x1y2 with lines lw 2 title 'KL rate (bits, right)'
unset multiplot
