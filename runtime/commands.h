/* The subcommands of bin/reclf; each returns the process exit code. */
#ifndef RECLF_COMMANDS_H
#define RECLF_COMMANDS_H
int cmd_train(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_models(int argc, char **argv);
/* sets OpenMP's (and so OpenBLAS's) thread count; n <= 0 leaves the default */
void reclf_set_threads(int n);
#endif
