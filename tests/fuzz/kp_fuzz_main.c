/* kp_fuzz_main.c - plain main() for the fuzz targets, so they run as ordinary (ASan) unit
 * tests without libFuzzer.
 * Data path: none. Runs LLVMFuzzerTestOneInput() over every file named on the command line
 * (directories are walked one level), and over cheap deterministic mutations of each: every
 * truncation, and each byte replaced by 0x00, 0xff and 0x80. Exit 0 if nothing aborted. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t n_runs;

static void run(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan reports any over-read. */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        abort();
    if (size)
        memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
    n_runs++;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            uint8_t *b = realloc(buf, cap);
            if (b == NULL)
                abort();
            buf = b;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    run(buf, len);
    for (size_t n = 0; n < len; n++)
        run(buf, n);
    static const uint8_t subst[] = {0x00, 0xff, 0x80};
    for (size_t i = 4; i < len; i++) {
        uint8_t orig = buf[i];
        for (size_t k = 0; k < sizeof(subst); k++) {
            if (subst[k] == orig)
                continue;
            buf[i] = subst[k];
            run(buf, len);
        }
        buf[i] = orig;
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            n_files++;
            continue;
        }
        DIR *dir = opendir(argv[i]);
        if (dir == NULL) {
            perror(argv[i]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (run_file(path) != 0) {
                closedir(dir);
                return 1;
            }
            n_files++;
        }
        closedir(dir);
    }
    printf("fuzz driver: %d files, %zu runs, no crash\n", n_files, n_runs);
    return n_files > 0 ? 0 : 1;
}
