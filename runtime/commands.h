/* The subcommands of bin/reclf; each returns the process exit code. */
#ifndef RECLF_COMMANDS_H
#define RECLF_COMMANDS_H
int cmd_train(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_explain(int argc, char **argv);
#endif
