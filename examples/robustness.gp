# robustness.gp - the figures of examples/robustness from its CSVs.
#   gnuplot -c examples/robustness.gp DIR ATTACKS OOD "MODEL ..."
# DIR holds the CSVs and receives the PNGs; ATTACKS and OOD are 1 when those tables
# were written; the last argument names the models in the order they were run.
dir = ARG1
models = ARG4
n = words(models)
set datafile separator ","
set terminal pngcairo size 900,600 noenhanced font ",11"
set grid
set key outside right top
# the grad_samples of model m's averaged-gradient (S = 12) and single-draw runs
is_det(m) = m eq "deterministic"
label(m) = is_det(m) ? m : sprintf("%s (beta %s)", m, m[5:])

if (ARG2 eq "1") {
    att = dir . "/attacks.csv"
    # the largest S in the table: the averaged attacks
    stats att using (column("grad_samples")) nooutput
    S = int(STATS_max)
    do for [a in "fgsm pgd"] {
        set output dir . "/" . a . ".png"
        set title sprintf("%s: accuracy on the attacked test images\nsolid: the attack's " . \
                          "gradients averaged over %d draws; dashed: over 1 draw", \
                          a eq "fgsm" ? "FGSM" : "PGD", S)
        set xlabel "epsilon in the [-1, 1] scale (in pixel intensities of [0, 1]: half of it)"
        set ylabel "accuracy (%)"
        set yrange [0:100]
        plot for [i = 1:n] att using (column("eps_pm1")):( \
                 strcol("model") eq word(models, i) && strcol("attack") eq a && \
                 (column("grad_samples") == S || is_det(word(models, i))) ? \
                 column("accuracy_pct") : NaN) \
                 with linespoints lw 2 lc i pt 7 title label(word(models, i)), \
             for [i = 1:n] att using (column("eps_pm1")):( \
                 strcol("model") eq word(models, i) && strcol("attack") eq a && \
                 column("grad_samples") == 1 ? column("accuracy_pct") : NaN) \
                 with linespoints lw 2 dt 2 lc i pt 6 notitle
    }
    l2 = dir . "/l2.csv"
    set output dir . "/l2.png"
    set multiplot layout 1,2 title "targeted L2 attack (to the next class): solid bars " . \
                                   "averaged gradients, light bars 1 draw"
    unset key
    unset xlabel
    set style fill solid 0.8 border -1
    set boxwidth 0.35 absolute
    set xrange [0.3:n + 0.7]
    set xtics () rotate by 20 right
    do for [i = 1:n] { set xtics add (word(models, i) i) }
    set title "success rate"
    set ylabel "successes among the images classified right (%)"
    set yrange [0:105]
    plot l2 using ($0 + 1):(0) with points notitle, \
         for [i = 1:n] l2 using (i - 0.18):(strcol("model") eq word(models, i) && \
             (column("grad_samples") == S || is_det(word(models, i))) ? \
             column("success_pct") : NaN) with boxes lc i, \
         for [i = 1:n] l2 using (i + 0.18):(strcol("model") eq word(models, i) && \
             column("grad_samples") == 1 ? column("success_pct") : NaN) \
             with boxes lc i fs transparent solid 0.35
    set title "mean L2 distortion of the successes"
    set ylabel "L2 distance, [0, 1] scale"
    set yrange [0:*]
    plot for [i = 1:n] l2 using (i - 0.18):(strcol("model") eq word(models, i) && \
             (column("grad_samples") == S || is_det(word(models, i))) ? \
             column("mean_l2_01") : NaN) with boxes lc i, \
         for [i = 1:n] l2 using (i + 0.18):(strcol("model") eq word(models, i) && \
             column("grad_samples") == 1 ? column("mean_l2_01") : NaN) \
             with boxes lc i fs transparent solid 0.35
    unset multiplot
    set xtics autofreq norotate
    set autoscale x
    set key outside right top
    set style fill empty
}

if (ARG3 eq "1") {
    ood = dir . "/ood.csv"
    set output dir . "/ood.png"
    set title "MNIST (in) against Fashion-MNIST (out): AUROC of each score"
    set style fill solid 0.8 border -1
    set yrange [0:1.05]
    set ylabel "AUROC"
    set xtics rotate by 20 right
    unset xlabel
    # one cluster per model, one bar per score (a missing rate stays empty)
    set xrange [-0.5:n - 0.5]
    set xtics () rotate by 20 right
    do for [i = 1:n] { set xtics add (word(models, i) i - 1) }
    set boxwidth 0.25 absolute
    unset style data
    plot ood using (0):(NaN) notitle, \
         for [k = 1:3] ood using ( \
             (sum [i = 1:n] (strcol("model") eq word(models, i) ? i - 1 : 0)) + (k - 2) * 0.27):( \
             strcol("score") eq word("rate entropy one_minus_max_p", k) ? column("auroc") : NaN) \
             with boxes lc k title word("rate entropy 1-max_p", k)
    set xtics autofreq norotate
    set autoscale x
    set style fill empty

    cal = dir . "/calibration.csv"
    set output dir . "/reliability.png"
    set title "reliability on MNIST's test images (15 bins; bins holding under 20 images " . \
              "not drawn)"
    set xlabel "mean confidence of the bin"
    set ylabel "accuracy of the bin"
    set xrange [0:1]
    set yrange [0:1]
    set key inside left top
    plot x with lines dt 3 lc "gray" title "calibrated", \
         for [i = 1:n] cal using (column("confidence")):( \
             strcol("model") eq word(models, i) && column("count") >= 20 ? \
             column("accuracy") : NaN) with linespoints lw 2 lc i pt 7 \
             title label(word(models, i))
}
