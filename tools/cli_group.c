/* cli_group.c - `strata group ...` (being built). */
#include "tools/cli.h"

int cli_group_main(int argc, char **argv)
{
    return cli_err("'strata group' is not available yet in this build"), CLI_EXIT_USAGE;
}
