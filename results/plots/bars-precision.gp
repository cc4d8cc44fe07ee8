set terminal pngcairo noenhanced size 2280,560 font 'sans,10'
set output "results/plots/bars-precision.png"
set title "Retrieval precision by label match, combined score (200 steps, batch 32; mean ± std over seeds)"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set key outside right top vertical
set xtics nomirror
plot "results/plots/bars-precision.dat" using 2:3:xtic(1) lc rgb '#888888' fs solid 0.6 title "random", \
     "results/plots/bars-precision.dat" using 4:5:xtic(1) lc rgb '#9400d3' fs solid 0.85 border -1 title "reclf none", \
     "results/plots/bars-precision.dat" using 6:7:xtic(1) lc rgb '#009e73' fs solid 0.85 border -1 title "reclf-nosrm none", \
     "results/plots/bars-precision.dat" using 8:9:xtic(1) lc rgb '#0072b2' fs solid 0.85 border -1 title "reclf-noirm none", \
     "results/plots/bars-precision.dat" using 10:11:xtic(1) lc rgb '#e69f00' fs solid 0.85 border -1 title "gloria none", \
     "results/plots/bars-precision.dat" using 12:13:xtic(1) lc rgb '#d55e00' fs solid 0.85 border -1 title "convirt none", \
     "results/plots/bars-precision.dat" using 14:15:xtic(1) lc rgb '#9400d3' fs pattern 4 border title "reclf side-swap", \
     "results/plots/bars-precision.dat" using 16:17:xtic(1) lc rgb '#009e73' fs pattern 4 border title "reclf-nosrm side-swap", \
     "results/plots/bars-precision.dat" using 18:19:xtic(1) lc rgb '#0072b2' fs pattern 4 border title "reclf-noirm side-swap", \
     "results/plots/bars-precision.dat" using 20:21:xtic(1) lc rgb '#e69f00' fs pattern 4 border title "gloria side-swap", \
     "results/plots/bars-precision.dat" using 22:23:xtic(1) lc rgb '#d55e00' fs pattern 4 border title "convirt side-swap"
