/* bin/reclf: train, evaluate and inspect the models compiled from graphs/. */
#include <omp.h>
#include <xmmintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_data.h"
#include "commands.h"
#include "graph_abi.h"

static const char *USAGE =
    "usage: reclf COMMAND [options]   (reclf COMMAND --help for its options)\n"
    "  train     train a model (SPEC 8) on SynthCXR or a CSV manifest\n"
    "  data      write SynthCXR as PNG + manifest.csv, or check a manifest\n"
    "  dump      write one batch, the loss and every gradient of a checkpoint (debug state)\n"
    "  eval      downstream evaluation of a checkpoint (SPEC 10): zero-shot, probe, retrieval, seg\n"
    "  explain   draw one pair's word-region attention and word importances as a PNG\n"
    "  models    list the compiled graphs\n";

int cmd_models(int argc, char **argv) {
    (void)argc, (void)argv;
    for (int i = 0; reclf_graphs[i]; i++) {
        const reclf_graph *g = reclf_graphs[i];
        printf("%-24s %9zu parameters  %s\n", g->name, g->n_param_elems,
               g->n_outputs > 0 && !strcmp(g->outputs[0].name, "loss") ? "trainable" : "evaluation");
    }
    for (int i = 0; reclf_graph_aliases[i].name; i++)
        printf("%-24s (the same compiled graph as %s)\n", reclf_graph_aliases[i].name, reclf_graph_aliases[i].graph->name);
    return 0;
}

/* Denormal floats (which appear as activations and gradients shrink) are 10-100x slower on x86:
 * flush them to zero on every thread, as PyTorch's set_flush_denormal does. This changes only
 * values below 1.2e-38; it is not -ffast-math and keeps NaN/Inf semantics. */
static void flush_denormals(void) {
    #pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ */
}

int main(int argc, char **argv) {
    /* Between parallel regions, libgomp's idle threads spin for a long while by default (300,000
     * iterations), and on a shared or oversubscribed machine the spinning threads take the cores
     * that the working ones need. Passive threads (no spin) cost a futex wake-up per region, which
     * on this class of virtual machine is ~150 us, and a training step has ~500 regions. A short
     * spin (GOMP_SPINCOUNT=1000, a few microseconds) catches back-to-back regions and yields soon
     * after. libgomp reads these when it loads, so set the spin count and start again. An explicit
     * OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment is respected. */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("GOMP_SPINCOUNT", "1000", 1);
        execv("/proc/self/exe", argv);
    }
    flush_denormals();
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "dump")) return cmd_dump(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "explain")) return cmd_explain(argc - 1, argv + 1);
    if (!strcmp(cmd, "models")) return cmd_models(argc - 1, argv + 1);
    fprintf(stderr, "reclf: unknown command '%s'\n%s", cmd, USAGE);
    return 2;
}
