/* cli_profile.c - `strata profile create|use|list|show|delete`: named connection settings,
 * like `rpk profile`.
 * Data path: none of the broker's. A profile is a file ~/.config/strata/profiles/NAME.yaml
 * in the format of ~/.config/strata/strata.yaml (brokers, admin_url, archive_url, tls.*,
 * sasl.mechanism, user, password); ~/.config/strata/current-profile names the one in use.
 * main() reads the file cli_profile_path() picks before any command runs (except the
 * profile commands themselves, which read none).
 * Invariants: 1. a profile file is written whole (temporary file, then rename) with mode
 *                0600: it may hold a password;
 *             2. a profile named by --profile or $STRATA_PROFILE must exist; a stale
 *                current-profile only warns, so that `strata profile use` can repair it. */
#include "tools/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ~/.config/strata, or "" without $HOME. */
static void config_dir(char *out, size_t cap)
{
    const char *home = getenv("HOME");
    if (!home || !*home)
        out[0] = '\0';
    else
        snprintf(out, cap, "%s/.config/strata", home);
}

/* Profile names are file names: letters, digits, '-', '_' and '.' (not first). */
static bool name_ok(const char *n)
{
    if (!*n || *n == '.' || strlen(n) > 64)
        return false;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
              *n == '-' || *n == '_' || *n == '.'))
            return false;
    return true;
}

static void profile_file(const char *name, char *out, size_t cap)
{
    char dir[PATH_MAX - 128];
    config_dir(dir, sizeof(dir));
    snprintf(out, cap, "%s/profiles/%s.yaml", dir, name);
}

/* The name in ~/.config/strata/current-profile, or "" when none. */
static void current_name(char *out, size_t cap)
{
    char dir[PATH_MAX - 32], path[PATH_MAX];
    config_dir(dir, sizeof(dir));
    out[0] = '\0';
    if (!dir[0])
        return;
    snprintf(path, sizeof(path), "%s/current-profile", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)cap, f))
        out[strcspn(out, " \t\r\n")] = '\0';
    fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cli_profile_path(char *out, size_t cap)
{
    char dir[PATH_MAX - 32];
    config_dir(dir, sizeof(dir));
    out[0] = '\0';
    if (!dir[0])
        return 0;
    const char *name = cli_opts.profile;
    const char *from = "--profile";
    if (!name || !*name) {
        name = getenv("STRATA_PROFILE");
        from = "$STRATA_PROFILE";
    }
    char cur[80];
    if (!name || !*name) {
        current_name(cur, sizeof(cur));
        name = cur;
        from = NULL;
    }
    if (*name) {
        char path[PATH_MAX];
        profile_file(name, path, sizeof(path));
        if (name_ok(name) && exists(path)) {
            snprintf(out, cap, "%s", path);
            return 0;
        }
        if (from) {
            cli_usage_err("unknown profile '%s' (from %s): see strata profile list", name, from);
            return -1;
        }
        cli_warn("the current profile '%s' does not exist: using strata.yaml (strata profile "
                 "use NAME picks another)",
                 name);
    }
    snprintf(out, cap, "%s/strata.yaml", dir);
    return 0;
}

/* ---- create ---- */

static const char create_help[] =
    "Usage: strata [global flags] profile create NAME [--force]\n"
    "Save the connection settings given by the global flags on this line and the STRATA_*\n"
    "environment (no profile is read; unset ones take their defaults) as profile NAME and\n"
    "switch to it.\n"
    "Saved: brokers, admin_url, archive_url, TLS files, SASL mechanism, user and password\n"
    "(the file is readable by you only).\n\n"
    "Flags:\n"
    "  --force   replace an existing profile NAME\n\n"
    "Examples:\n"
    "  strata --brokers 10.0.0.5:9092 --admin-url http://10.0.0.5:9644 profile create prod\n"
    "  strata --brokers h:9093 --tls-ca ca.pem --user admin --password s3cret profile create "
    "secure\n";

static void put_kv(FILE *f, const char *key, const char *val)
{
    if (val && *val)
        fprintf(f, "%s: %s\n", key, val);
}

/* Start writing `path` whole: a temporary file beside it (mode 0600). @return the stream
 * (finish with commit_file) or NULL after printing. */
static FILE *begin_file(const char *path, char *tmp, size_t cap)
{
    snprintf(tmp, cap, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        cli_err("cannot write %s: %s", tmp, strerror(errno));
    }
    return f;
}

/* Close f and rename its temporary file over `path`. @return 0 or CLI_EXIT_FAIL. */
static int commit_file(FILE *f, const char *tmp, const char *path)
{
    bool bad = ferror(f) != 0;
    if (fclose(f) || bad || rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        return cli_err("cannot write %s: %s", path, strerror(err));
    }
    return 0;
}

static int write_profile(const char *name, const char *path)
{
    char dir[PATH_MAX - 32], tmp[PATH_MAX + 8];
    config_dir(dir, sizeof(dir));
    strcat(dir, "/profiles");
    for (char *p = dir + 1;; p++) { /* mkdir -p */
        if (*p && *p != '/')
            continue;
        char c = *p;
        *p = '\0';
        int bad = mkdir(dir, 0700) && errno != EEXIST;
        *p = c;
        if (bad)
            return cli_err("cannot create %s: %s", dir, strerror(errno));
        if (!c)
            break;
    }
    FILE *f = begin_file(path, tmp, sizeof(tmp));
    if (!f)
        return CLI_EXIT_FAIL;
    fprintf(f, "# strata profile '%s' (strata profile create)\n", name);
    put_kv(f, "brokers", cli_opts.brokers);
    put_kv(f, "admin_url", cli_opts.admin_url);
    put_kv(f, "archive_url", cli_opts.archive_url);
    if (cli_opts.is_tls)
        put_kv(f, "tls.enabled", "true");
    put_kv(f, "tls.ca", cli_opts.tls_ca);
    put_kv(f, "tls.cert", cli_opts.tls_cert);
    put_kv(f, "tls.key", cli_opts.tls_key);
    put_kv(f, "sasl.mechanism", cli_opts.sasl_mechanism);
    put_kv(f, "user", cli_opts.user);
    put_kv(f, "password", cli_opts.password);
    return commit_file(f, tmp, path);
}

static int set_current(const char *name)
{
    char dir[PATH_MAX - 32], path[PATH_MAX], tmp[PATH_MAX + 8];
    config_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/current-profile", dir);
    FILE *f = begin_file(path, tmp, sizeof(tmp));
    if (!f)
        return CLI_EXIT_FAIL;
    fprintf(f, "%s\n", name);
    return commit_file(f, tmp, path);
}

/* Parse NAME (one argument) with `flags` ("force" accepted when allow_force). @return -1 to go
 * on, or an exit code. */
static int parse_name(
    int argc, char **argv, const char *help, bool allow_force, bool *force, const char **name)
{
    static const struct option longs[] = {
        {"force", no_argument, NULL, 'F'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = cli_getopt(argc, argv, "h", longs)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return CLI_EXIT_OK;
        }
        if (c != 'F' || !allow_force)
            return c == 'F' ? cli_usage_err("unknown flag '--force' for '%s'", cli_cmd_path)
                            : CLI_EXIT_USAGE;
        *force = true;
    }
    if (argc - optind != 1)
        return cli_usage_err("'%s' needs one profile NAME", cli_cmd_path);
    *name = argv[optind];
    if (!name_ok(*name))
        return cli_usage_err("bad profile name '%s': use letters, digits, '-', '_' and '.'", *name);
    return -1;
}

static int cmd_create(int argc, char **argv)
{
    bool force = false;
    const char *name = NULL;
    int rc = parse_name(argc, argv, create_help, true, &force, &name);
    if (rc >= 0)
        return rc;
    char path[PATH_MAX];
    profile_file(name, path, sizeof(path));
    if (!getenv("HOME"))
        return cli_err("$HOME is not set: no place for profiles");
    if (exists(path) && !force)
        return cli_err("profile '%s' exists: --force replaces it", name);
    if ((rc = write_profile(name, path)) || (rc = set_current(name)))
        return rc;
    if (cli_opts.is_json) {
        fputs("{\"profile\":", stdout);
        cli_json_cstr(stdout, name);
        fputs(",\"file\":", stdout);
        cli_json_cstr(stdout, path);
        puts(",\"current\":true}");
    } else {
        printf("Created profile %s (%s) and switched to it\n", name, path);
    }
    return CLI_EXIT_OK;
}

/* ---- use, delete ---- */

static const char use_help[] = "Usage: strata profile use NAME\n"
                               "Make profile NAME the one every command reads (unless\n"
                               "--profile or $STRATA_PROFILE name another).\n\n"
                               "Examples:\n"
                               "  strata profile use prod\n";

/* NAME of use/delete and its file. @return -1 to go on, or an exit code. */
static int
named_profile(int argc, char **argv, const char *help, const char **name, char *path, size_t cap)
{
    bool force = false;
    int rc = parse_name(argc, argv, help, false, &force, name);
    if (rc < 0)
        profile_file(*name, path, cap);
    return rc;
}

static int cmd_use(int argc, char **argv)
{
    const char *name = NULL;
    char path[PATH_MAX];
    int rc = named_profile(argc, argv, use_help, &name, path, sizeof(path));
    if (rc >= 0)
        return rc;
    if (!exists(path))
        return cli_err("unknown profile '%s': see strata profile list", name);
    if ((rc = set_current(name)))
        return rc;
    if (!cli_opts.is_json)
        printf("Switched to profile %s\n", name);
    else
        printf("{\"profile\":\"%s\",\"current\":true}\n", name);
    return CLI_EXIT_OK;
}

static const char delete_help[] = "Usage: strata profile delete NAME\n"
                                  "Delete profile NAME (and stop using it if it is current).\n\n"
                                  "Examples:\n"
                                  "  strata profile delete old\n";

static int cmd_delete(int argc, char **argv)
{
    const char *name = NULL;
    char path[PATH_MAX], cur[80], dir[PATH_MAX - 32], cpath[PATH_MAX];
    int rc = named_profile(argc, argv, delete_help, &name, path, sizeof(path));
    if (rc >= 0)
        return rc;
    if (unlink(path))
        return cli_err(errno == ENOENT ? "unknown profile '%s'" : "cannot delete profile '%s'",
                       name);
    current_name(cur, sizeof(cur));
    if (!strcmp(cur, name)) {
        config_dir(dir, sizeof(dir));
        snprintf(cpath, sizeof(cpath), "%s/current-profile", dir);
        unlink(cpath);
    }
    if (!cli_opts.is_json)
        printf("Deleted profile %s\n", name);
    else
        printf("{\"profile\":\"%s\",\"deleted\":true}\n", name);
    return CLI_EXIT_OK;
}

/* ---- list, show ---- */

/* The value of top-level `key` in a profile file (first match), "" when absent. */
static void file_value(const char *path, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            char *v = line + kl + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\r\n")] = '\0';
            snprintf(out, cap, "%s", v);
            break;
        }
    fclose(f);
}

static const char list_help[] = "Usage: strata profile list\n"
                                "List the profiles; * marks the current one.\n\n"
                                "Examples:\n"
                                "  strata profile list\n"
                                "  strata profile list --format json\n";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_list(int argc, char **argv)
{
    int rc = cli_args_only(argc, argv, list_help);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return cli_usage_err("unexpected argument '%s'", argv[optind]);
    char dir[PATH_MAX - 64], pdir[PATH_MAX], cur[80];
    config_dir(dir, sizeof(dir));
    snprintf(pdir, sizeof(pdir), "%s/profiles", dir);
    current_name(cur, sizeof(cur));
    const char *in_use = cli_opts.profile ? cli_opts.profile : getenv("STRATA_PROFILE");
    if (!in_use || !*in_use)
        in_use = cur;
    char *names[256];
    int n = 0;
    DIR *d = dir[0] ? opendir(pdir) : NULL;
    for (struct dirent *e; d && n < 256 && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".yaml") && e->d_name[0] != '.')
            names[n++] = strndup(e->d_name, len - 5);
    }
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof(*names), cmp_str);
    if (cli_opts.is_json)
        putchar('[');
    else
        printf("%-24s %-8s %s\n", "NAME", "CURRENT", "BROKERS");
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX], brokers[512];
        if (!names[i])
            continue;
        profile_file(names[i], path, sizeof(path));
        file_value(path, "brokers", brokers, sizeof(brokers));
        bool is_cur = !strcmp(names[i], in_use);
        if (cli_opts.is_json) {
            printf("%s{\"name\":", i ? "," : "");
            cli_json_cstr(stdout, names[i]);
            printf(",\"current\":%s,\"brokers\":", is_cur ? "true" : "false");
            cli_json_cstr(stdout, brokers);
            putchar('}');
        } else {
            printf("%-24s %-8s %s\n", names[i], is_cur ? "*" : "", brokers);
        }
        free(names[i]);
    }
    if (cli_opts.is_json)
        puts("]");
    return CLI_EXIT_OK;
}

static const char show_help[] = "Usage: strata profile show [NAME]\n"
                                "Print a profile's settings (the current one by default); the\n"
                                "password is shown as (set).\n\n"
                                "Examples:\n"
                                "  strata profile show\n"
                                "  strata profile show prod --format json\n";

static int cmd_show(int argc, char **argv)
{
    int rc = cli_args_only(argc, argv, show_help);
    if (rc >= 0)
        return rc;
    if (argc - optind > 1)
        return cli_usage_err("profile show takes at most one NAME");
    char path[PATH_MAX], cur[80];
    const char *name = optind < argc ? argv[optind] : NULL;
    if (!name) {
        name = cli_opts.profile ? cli_opts.profile : getenv("STRATA_PROFILE");
        if (!name || !*name) {
            current_name(cur, sizeof(cur));
            name = cur;
        }
    }
    if (!*name)
        return cli_err("no current profile: strata profile use NAME chooses one");
    profile_file(name, path, sizeof(path));
    if (!name_ok(name) || !exists(path))
        return cli_err("unknown profile '%s': see strata profile list", name);
    static const char *const keys[] = {"brokers", "admin_url", "archive_url", "tls.enabled",
                                       "tls.ca",  "tls.cert",  "tls.key",     "sasl.mechanism",
                                       "user",    "password",  NULL};
    if (cli_opts.is_json) {
        fputs("{\"name\":", stdout);
        cli_json_cstr(stdout, name);
    } else {
        printf("%-16s %s\n", "name", name);
    }
    for (int i = 0; keys[i]; i++) {
        char v[1024];
        file_value(path, keys[i], v, sizeof(v));
        if (!v[0])
            continue;
        const char *shown = strcmp(keys[i], "password") ? v : "(set)";
        if (cli_opts.is_json) {
            printf(",\"%s\":", keys[i]);
            cli_json_cstr(stdout, shown);
        } else {
            printf("%-16s %s\n", keys[i], shown);
        }
    }
    if (cli_opts.is_json)
        puts("}");
    return CLI_EXIT_OK;
}

/* ---- Family ---- */

static const char profile_help[] =
    "Usage: strata profile COMMAND\n"
    "Named connection settings (like rpk profile): each profile is a file\n"
    "~/.config/strata/profiles/NAME.yaml in the format of ~/.config/strata/strata.yaml.\n"
    "The current one replaces strata.yaml for every command; --profile NAME or\n"
    "$STRATA_PROFILE pick another for one command. Flags and STRATA_* variables still win.\n\n"
    "Examples:\n"
    "  strata --brokers 10.0.0.5:9092 profile create prod\n"
    "  strata profile use prod\n"
    "  strata --profile dev topic list\n";

static const cli_cmd_t profile_cmds[] = {
    {"create", cmd_create, "save the settings in effect as a profile and use it"},
    {"use", cmd_use, "make a profile the current one"},
    {"list", cmd_list, "list profiles"},
    {"show", cmd_show, "print a profile's settings"},
    {"delete", cmd_delete, "delete a profile"},
    {NULL, NULL, NULL}};

int cli_profile_main(int argc, char **argv)
{
    return cli_dispatch("profile", profile_cmds, argc - 1, argv + 1, profile_help);
}
