/* `reclf data ...`: write SynthCXR out as a manifest, check a manifest. */
#ifndef RECLF_CMD_DATA_H
#define RECLF_CMD_DATA_H

/* argv[0] is "data" (main's argv shifted past the program name); prints usage and returns
 * non-zero on bad arguments, 0 on success. */
int cmd_data(int argc, char **argv);

#endif
