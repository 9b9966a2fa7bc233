/* cli_cluster.c - `strata cluster ...` (being built). */
#include "tools/cli.h"

int cli_cluster_main(int argc, char **argv)
{
    return cli_err("'strata cluster' is not available yet in this build"), CLI_EXIT_USAGE;
}
