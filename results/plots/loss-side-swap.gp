set terminal pngcairo noenhanced size 900,560 font 'sans,10'
set output "results/plots/loss-side-swap.png"
set title "Training loss, hard negatives: side-swap (200 steps, batch 32; mean over seeds)"
set xlabel 'step'
set ylabel 'training loss (per variant: SPEC 6, 8a)'
set grid
set key top right
plot "results/plots/loss-side-swap-reclf.dat" using 1:2 with lines lw 2 lc rgb '#9400d3' title "reclf (3 seeds)", \
     "results/plots/loss-side-swap-reclf-nosrm.dat" using 1:2 with lines lw 2 lc rgb '#009e73' title "reclf-nosrm (3 seeds)", \
     "results/plots/loss-side-swap-reclf-noirm.dat" using 1:2 with lines lw 2 lc rgb '#0072b2' title "reclf-noirm (3 seeds)", \
     "results/plots/loss-side-swap-gloria.dat" using 1:2 with lines lw 2 lc rgb '#e69f00' title "gloria (3 seeds)", \
     "results/plots/loss-side-swap-convirt.dat" using 1:2 with lines lw 2 lc rgb '#d55e00' title "convirt (3 seeds)"
