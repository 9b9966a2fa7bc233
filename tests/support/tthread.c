/* tthread.c - tests: this process's threads by name (see tthread.h). */
#include "tests/support/tthread.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tthread_named(const char *name, pid_t *tids, int max)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* exited meanwhile */
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = 0;
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        if (strcmp(comm, name) != 0)
            continue;
        if (n < max)
            tids[n] = (pid_t)atoi(de->d_name);
        n++;
    }
    closedir(d);
    return n;
}
