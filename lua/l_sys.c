/*
 * l_sys.c - small system helpers in `sgdsa.core` for the trainer, sweeps and
 * the REPL, and the process-wide interrupt flag behind Ctrl-C.
 *
 *   core.interrupted()          true once SIGINT/SIGTERM arrived (and the count)
 *   core.clear_interrupted()    reset the flag and cancel a pending abort
 *   core.catch_signals(mode)    "stop" | "interrupt" | "default" (see sgdsa.h)
 *   core.time()                 monotonic seconds (float)
 *   core.isatty(fd|file)        boolean
 *   core.hostname(), core.getpid()
 *   core.fsync_rename(tmp, dst) fsync tmp, rename it to dst, fsync the folder
 *   core.mkdir_p(path)          create a folder and its parents
 *   core.exists(path)           boolean, "file" | "directory" | "other"
 *   core.listdir(path)          sorted names (no . and ..)
 *   core.lock(path)             an exclusive advisory lock (flock) on the file
 *                               `path` (created if missing), held until
 *                               lock:unlock(), its collection or the process's
 *                               end; the file then says "pid <n> host <h>
 *                               since <time>". Held elsewhere: nil, message,
 *                               the holder's line ("" if it wrote none yet);
 *                               another failure: nil, message, errno.
 *                               lock:intact(): true while `path` still names
 *                               the locked file; else false and "removed" or
 *                               "replaced" (a new file there, another holder's)
 *   core.set_num_threads(n), core.get_num_threads()
 *   core.conv_choices([text])   the CPU convolutions' implementation per geometry
 *                               and pass in this process, one line each (text:
 *                               pin those lines' choices first; kernels/cpu/nn.h)
 *   core.conv_impl([name])      the CPU convolutions' implementation in force,
 *                               "auto" | "im2col" | "dnnl" | "winograd" (sets it when given;
 *                               see kernels/cpu/nn.h)
 *   core.sleep(s)               returns early when an interrupt arrives
 *   core.terminal_width()       columns of the terminal (or $COLUMNS, or 80)
 *   core.root()                 where the Lua library, models/ and experiments/ live
 *   core.overrides(args)        the typed overrides table of `sgdsa run SCRIPT args...`
 *   core.cpu_info()             the CPU and its kernels: {cpu, family, model,
 *                               features = {"avx2", "avx512", "amx", "amd"...},
 *                               blas, blas_config, blas_core, blas_core_origin
 *                               ("openblas" | "sgdsa" | "user"),
 *                               blas_core_detected, blas_core_advice,
 *                               dnnl_version, dnnl_isa, summary}
 *                               (core/cpu_info.h)
 *   core.blas_core_for(core, features)  the rule alone (a pure function): the
 *                               core to run instead of `core` on a CPU with
 *                               `features` (names as above), or nil
 *   core.sgemm_gflops(n [, reps=3])  best GFLOP/s of n^3 sgemm calls
 *
 * Failures a caller can expect (a missing folder, a full disk) return
 * nil, message as Lua's io library does; misuse raises an error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lualib.h>

#include "binding.h"
#include "comm.h"
#include "cpu_info.h"
#include "device.h"
#include "fs.h"
#include "runtime.h"

/* ---- interrupts ---------------------------------------------------------- */

static volatile sig_atomic_t interrupt_count;
static volatile sig_atomic_t signal_mode;      /* 0 none, 1 stop, 2 interrupt */
static lua_State *volatile hook_target;
static struct sigaction saved_int, saved_term;
static int handlers_saved;

static void abort_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted");
}

static void set_abort_hook(lua_State *L)
{
    lua_sethook(L, abort_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void sgl_interrupt(lua_State *L)
{
    static const char note[] =
        "\nsgdsa: interrupt: stopping after the current step (interrupt again to abort)\n";
    int n = interrupt_count + 1;
    interrupt_count = n;
    if (L == NULL)
        return;
    if (signal_mode == 2 || n >= 2) {
        set_abort_hook(L);
    } else if (signal_mode == 1 && sg_comm_size() <= 1) {
        /* (not on the ranks of a data-parallel run: they get a signal from
         * mpirun when it ends the job, also when another rank failed) */
        ssize_t w = write(STDERR_FILENO, note, sizeof note - 1);
        (void)w;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    int saved_errno = errno;
    sgl_interrupt(hook_target);
    errno = saved_errno;
}

int sgl_catch_signals(lua_State *L, int mode)
{
    if (mode < 0 || mode > 2)
        return sg_seterr("catch_signals: unknown mode %d (0 default, 1 stop, 2 interrupt)", mode);
    if (mode == 0) {
        if (L != NULL && hook_target != NULL && hook_target != L)
            return 0; /* another state owns the handlers */
        signal_mode = 0;
        hook_target = NULL;
        if (handlers_saved) {
            sigaction(SIGINT, &saved_int, NULL);
            sigaction(SIGTERM, &saved_term, NULL);
            handlers_saved = 0;
        }
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking reads return EINTR so callers see the flag */
    hook_target = L;
    signal_mode = mode;
    if (!handlers_saved) {
        if (sigaction(SIGINT, NULL, &saved_int) != 0 || sigaction(SIGTERM, NULL, &saved_term) != 0)
            return sg_seterr("catch_signals: sigaction failed: %s", strerror(errno));
        handlers_saved = 1;
    }
    /* SIGTERM asks a run to stop cleanly; in interrupt mode (the REPL) it keeps its old meaning. */
    if (sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, mode == 1 ? &sa : &saved_term, NULL) != 0)
        return sg_seterr("catch_signals: sigaction failed: %s", strerror(errno));
    return 0;
}

int sgl_interrupted(void) { return interrupt_count; }

void sgl_clear_interrupt(lua_State *L)
{
    interrupt_count = 0;
    if (L != NULL)
        lua_sethook(L, NULL, 0, 0);
}

static lua_State *main_thread(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *M = lua_tothread(L, -1);
    lua_pop(L, 1);
    return M;
}

static int l_interrupted(lua_State *L)
{
    int n = sgl_interrupted();
    lua_pushboolean(L, n > 0);
    lua_pushinteger(L, n);
    return 2;
}

static int l_clear_interrupted(lua_State *L)
{
    interrupt_count = 0;
    return 0;
}

static int l_catch_signals(lua_State *L)
{
    static const char *const modes[] = {"default", "stop", "interrupt", NULL};
    int mode = luaL_checkoption(L, 1, "stop", modes);
    if (sgl_catch_signals(main_thread(L), mode) != 0)
        return sgl_error(L);
    return 0;
}

/* ---- time, process, terminal --------------------------------------------- */

static int l_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (!(s >= 0) || s > 1e9)
        return luaL_error(L, "sleep: seconds must be in [0, 1e9], got %f", s);
    struct timespec req, rem;
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (double)req.tv_sec) * 1e9);
    int start = interrupt_count;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        if (interrupt_count != start)
            break;
        req = rem;
    }
    return 0;
}

static int l_isatty(lua_State *L)
{
    int fd;
    luaL_Stream *f = (luaL_Stream *)luaL_testudata(L, 1, LUA_FILEHANDLE);
    if (f != NULL) {
        if (f->closef == NULL || f->f == NULL)
            return luaL_error(L, "isatty: the file is closed");
        fd = fileno(f->f);
    } else {
        lua_Integer n = luaL_checkinteger(L, 1);
        if (n < 0 || n > INT_MAX)
            return luaL_error(L, "isatty: bad file descriptor %d", (int)n);
        fd = (int)n;
    }
    lua_pushboolean(L, isatty(fd));
    return 1;
}

static int l_hostname(lua_State *L)
{
    char buf[256];
    if (gethostname(buf, sizeof buf) != 0)
        return luaL_error(L, "hostname: %s", strerror(errno));
    buf[sizeof buf - 1] = '\0';
    lua_pushstring(L, buf);
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

static int l_terminal_width(lua_State *L)
{
    struct winsize ws;
    int fds[] = {STDOUT_FILENO, STDERR_FILENO, STDIN_FILENO};
    for (int i = 0; i < 3; i++) {
        if (ioctl(fds[i], TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
            lua_pushinteger(L, ws.ws_col);
            return 1;
        }
    }
    const char *cols = getenv("COLUMNS");
    long c = cols ? strtol(cols, NULL, 10) : 0;
    lua_pushinteger(L, c > 0 && c < 100000 ? c : 80);
    return 1;
}

static int l_set_num_threads(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > 4096)
        return luaL_error(L, "set_num_threads: n must be in [1, 4096], got %d", (int)n);
    sg_set_num_threads((int)n);
    return 0;
}

static int l_get_num_threads(lua_State *L)
{
    lua_pushinteger(L, sg_get_num_threads());
    return 1;
}

static int l_conv_impl(lua_State *L)
{
    static const char *const names[] = { "auto", "im2col", "dnnl", "winograd", NULL };
    if (!lua_isnoneornil(L, 1)) {
        int i = luaL_checkoption(L, 1, NULL, names);
        if (sg_device_set_conv_impl(SG_CPU, i))
            return luaL_error(L, "conv_impl: %s", sg_geterr());
    }
    const int impl = sg_device_get_conv_impl(SG_CPU);
    if (impl < 0)
        return sgl_error(L);
    lua_pushstring(L, names[impl]);
    return 1;
}

static int l_conv_choices(lua_State *L)
{
    if (!lua_isnoneornil(L, 1) && sg_device_conv_impl_pin(SG_CPU, luaL_checkstring(L, 1)))
        return luaL_error(L, "conv_choices: %s", sg_geterr());
    const int64_t len = sg_device_conv_impl_choices(SG_CPU, NULL, 0);
    if (len < 0)
        return luaL_error(L, "conv_choices: %s", sg_geterr());
    luaL_Buffer b;
    const size_t n = (size_t)len + 1;
    char *p = luaL_buffinitsize(L, &b, n);
    const int64_t got = sg_device_conv_impl_choices(SG_CPU, p, n);  /* choices are only added */
    luaL_pushresultsize(&b, got >= 0 && (size_t)got < n ? (size_t)got : n - 1);
    return 1;
}

static int l_root(lua_State *L)
{
    char buf[PATH_MAX];
    lua_pushstring(L, sgl_root(buf, sizeof buf));
    return 1;
}

/* core.overrides({"seed=3", "optim.T0=0.5", ...}) -> the overrides table
 * `sgdsa run SCRIPT ARGS` makes of those arguments (typed the same way). */
static int l_overrides(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n < 0 || n > 100000)
        return luaL_error(L, "overrides: %I arguments (at most 100000)", n);
    const char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "overrides: argument %I is a %s, not a string", i, luaL_typename(L, -1));
        argv[i - 1] = lua_tostring(L, -1); /* kept alive by the table at 1 */
        lua_pop(L, 1);
    }
    sgl_push_overrides(L, (int)n, argv);
    return 1;
}

/* ---- the CPU and its kernels ------------------------------------------------- */

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v == NULL)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static int l_cpu_info(lua_State *L)
{
    int fam, mod;
    char summary[512];
    sg_cpu_family_model(&fam, &mod);
    lua_createtable(L, 0, 14);
    set_str(L, "cpu", sg_cpu_brand());
    lua_pushinteger(L, fam);
    lua_setfield(L, -2, "family");
    lua_pushinteger(L, mod);
    lua_setfield(L, -2, "model");
    const unsigned f = sg_cpu_features();
    lua_newtable(L);
    int n = 0;
    for (unsigned bit = 1; sg_cpu_feature_name(bit); bit <<= 1)
        if (f & bit) {
            lua_pushstring(L, sg_cpu_feature_name(bit));
            lua_rawseti(L, -2, ++n);
        }
    lua_setfield(L, -2, "features");
    const char *cfg = sg_blas_config(), *sp = strchr(cfg, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    lua_pushlstring(L, cfg, sp ? (size_t)(sp - cfg) : strlen(cfg));
    lua_setfield(L, -2, "blas");
    set_str(L, "blas_config", cfg);
    set_str(L, "blas_core", sg_blas_core());
    set_str(L, "blas_core_origin", sg_blas_core_origin());
    set_str(L, "blas_core_detected", sg_blas_core_detected());
    set_str(L, "blas_core_advice", sg_blas_core_advice());
    set_str(L, "dnnl_version", sg_dnnl_version());
    set_str(L, "dnnl_isa", sg_dnnl_isa());
    sg_cpu_summary(summary, sizeof summary);
    set_str(L, "summary", summary);
    return 1;
}

static int l_blas_core_for(lua_State *L)
{
    const char *core = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    unsigned f = 0;
    const lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        const char *name = lua_tostring(L, -1);
        unsigned bit = 1;
        while (sg_cpu_feature_name(bit) && !(name && !strcmp(name, sg_cpu_feature_name(bit))))
            bit <<= 1;
        if (sg_cpu_feature_name(bit) == NULL)
            return luaL_error(L, "blas_core_for: unknown CPU feature %s at %d (avx2, avx512, amx, "
                                 "amd)", name ? name : luaL_typename(L, -1), (int)i);
        f |= bit;
        lua_pop(L, 1);
    }
    const char *want = sg_blas_core_for(core, f);
    if (want)
        lua_pushstring(L, want);
    else
        lua_pushnil(L);
    return 1;
}

static int l_sgemm_gflops(lua_State *L)
{
    const lua_Integer n = luaL_checkinteger(L, 1), reps = luaL_optinteger(L, 2, 3);
    if (n < 1 || n > 8192 || reps < 1 || reps > 100)
        return luaL_error(L, "sgemm_gflops: n must be in [1, 8192] and reps in [1, 100], got "
                             "%I and %I", n, reps);
    const double g = sg_cpu_sgemm_gflops((int)n, (int)reps);
    if (g < 0)
        return sgl_error(L);
    lua_pushnumber(L, g);
    return 1;
}

/* ---- files ------------------------------------------------------------------ */

static int fail(lua_State *L, const char *op, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s: %s", op, path, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int l_fsync_rename(lua_State *L)
{
    const char *tmp = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    if (fsync_path(tmp, O_RDONLY) != 0)
        return fail(L, "fsync_rename (fsync)", tmp, errno);
    if (sg_rename_durable(tmp, dst, "fsync_rename") != 0) {
        const int e = errno;
        lua_pushnil(L);
        lua_pushstring(L, sg_geterr());
        lua_pushinteger(L, e);
        return 3;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_mkdir_p(lua_State *L)
{
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    if (n == 0)
        return luaL_error(L, "mkdir_p: empty path");
    char *buf = (char *)lua_newuserdatauv(L, n + 1, 0);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            struct stat st;
            if (mkdir(buf, 0777) != 0) {
                int e = errno;
                if (e != EEXIST || stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                    return fail(L, "mkdir_p", buf, e == EEXIST ? ENOTDIR : e);
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_exists(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushboolean(L, 1);
    lua_pushstring(L, S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "file" : "other");
    return 2;
}

/* scandir's list, owned by a userdata so a Lua memory error cannot leak it. */
typedef struct {
    struct dirent **list;
    int n;
} dirlist;

static int dirlist_gc(lua_State *L)
{
    dirlist *dl = (dirlist *)lua_touserdata(L, 1);
    for (int i = 0; i < dl->n; i++)
        free(dl->list[i]);
    free(dl->list);
    dl->list = NULL;
    dl->n = 0;
    return 0;
}

static int skip_dots(const struct dirent *e)
{
    return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

static int l_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    dirlist *dl = (dirlist *)lua_newuserdatauv(L, sizeof *dl, 0);
    dl->list = NULL;
    dl->n = 0;
    if (luaL_newmetatable(L, "sgdsa.dirlist")) {
        lua_pushcfunction(L, dirlist_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    int n = scandir(path, &dl->list, skip_dots, alphasort);
    if (n < 0) {
        dl->list = NULL;
        return fail(L, "listdir", path, errno);
    }
    dl->n = n;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, dl->list[i]->d_name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- locks ------------------------------------------------------------------ */

#define LOCK_MT "sgdsa.Lock"
#define LOCK_RECORD 200   /* bytes of the holder's line, padded with spaces */

typedef struct {
    int fd;   /* the locked file, or -1 once released */
} lockbox;

/* The holder's line in a lock file: "pid <n> host <h> since <time>", or ""
 * when the file holds none yet. */
static void read_holder(int fd, char *buf, size_t n)
{
    ssize_t got = pread(fd, buf, n - 1, 0);
    buf[got > 0 ? got : 0] = '\0';
    size_t len = strlen(buf);
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\n'))
        buf[--len] = '\0';
}

/* The pid of a holder line on this host, or 0. */
static long holder_pid_here(const char *line)
{
    long pid = 0;
    char host[256], me[256];
    if (sscanf(line, "pid %ld host %255s", &pid, host) != 2 || pid <= 0)
        return 0;
    if (gethostname(me, sizeof me) != 0)
        return 0;
    me[sizeof me - 1] = '\0';
    return strcmp(host, me) == 0 ? pid : 0;
}

/* A holder line that names a process known to be gone: this host, and no
 * such pid. (The lock is held, so its line is stale: the new holder has not
 * written its own yet.) */
static int holder_gone(const char *line)
{
    long pid = holder_pid_here(line);
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* A holder line that names a process of this host that is exiting (a
 * zombie: its leader has exited while its other threads, which still hold
 * its files and so the lock, are being torn down). */
static int holder_dying(const char *line)
{
    long pid = holder_pid_here(line);
    if (pid <= 0)
        return 0;
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static int l_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lockbox *u = (lockbox *)lua_newuserdatauv(L, sizeof *u, 1);
    u->fd = -1;
    luaL_setmetatable(L, LOCK_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);   /* the path, for lock:intact() */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return fail(L, "lock", path, errno);
    int dying_waits = 0;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EWOULDBLOCK) {
            close(fd);
            return fail(L, "lock", path, e);
        }
        /* held: the holder writes its line just after locking; wait up to a
         * second for a line that is there and not a former holder's */
        char line[LOCK_RECORD + 1];
        for (int i = 0; i < 100; i++) {
            read_holder(fd, line, sizeof line);
            if (line[0] && !holder_gone(line))
                break;
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        /* a holder that is exiting releases the lock when its last thread
         * is gone: try again, for up to 10 s */
        if (line[0] && holder_dying(line) && dying_waits++ < 1000) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        close(fd);
        lua_pushnil(L);
        if (line[0])
            lua_pushfstring(L, "lock: %s: held by %s", path, line);
        else
            lua_pushfstring(L, "lock: %s: held by another process", path);
        lua_pushstring(L, line);
        return 3;
    }
    u->fd = fd;
    /* the holder's line, one fixed-size write (best effort: the lock holds
     * without it, e.g. on a full disk) */
    char host[256], when[32], rec[LOCK_RECORD + 1];
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "?");
    host[sizeof host - 1] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        strcpy(when, "?");
    int k = snprintf(rec, sizeof rec, "pid %ld host %s since %s", (long)getpid(), host, when);
    if (k < 0 || k >= LOCK_RECORD)
        k = LOCK_RECORD - 1;
    memset(rec + k, ' ', (size_t)(LOCK_RECORD - 1 - k));
    rec[LOCK_RECORD - 1] = '\n';
    ssize_t w = pwrite(fd, rec, LOCK_RECORD, 0);
    (void)w;
    return 1;
}

/* lock:unlock(), __gc and __close: release (idempotent). */
static int l_unlock(lua_State *L)
{
    lockbox *u = (lockbox *)luaL_checkudata(L, 1, LOCK_MT);
    if (u->fd >= 0) {
        close(u->fd);   /* closing the only descriptor releases the flock */
        u->fd = -1;
    }
    return 0;
}

static int l_lock_held(lua_State *L)
{
    lockbox *u = (lockbox *)luaL_checkudata(L, 1, LOCK_MT);
    lua_pushboolean(L, u->fd >= 0);
    return 1;
}

/* lock:intact(): does the lock's path still name the file this lock holds?
 * A folder removed (and perhaps made again by another run) while its holder
 * still writes there is told apart from its own by the lock file's inode. */
static int l_lock_intact(lua_State *L)
{
    lockbox *u = (lockbox *)luaL_checkudata(L, 1, LOCK_MT);
    if (u->fd < 0) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "released");
        return 2;
    }
    lua_getiuservalue(L, 1, 1);
    const char *path = lua_tostring(L, -1);
    struct stat held, there;
    if (fstat(u->fd, &held) != 0)
        return luaL_error(L, "lock:intact: %s: %s", path, strerror(errno));
    if (stat(path, &there) != 0) {
        int e = errno;
        if (e != ENOENT && e != ENOTDIR)
            return luaL_error(L, "lock:intact: %s: %s", path, strerror(e));
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "removed");
        return 2;
    }
    if (held.st_dev != there.st_dev || held.st_ino != there.st_ino) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "replaced");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_lock_tostring(lua_State *L)
{
    lockbox *u = (lockbox *)luaL_checkudata(L, 1, LOCK_MT);
    lua_pushstring(L, u->fd >= 0 ? "[sgdsa.Lock (held)]" : "[sgdsa.Lock (released)]");
    return 1;
}

static void open_lock_mt(lua_State *L)
{
    static const luaL_Reg methods[] = {{"unlock", l_unlock}, {"held", l_lock_held}, {"intact", l_lock_intact}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", l_unlock}, {"__close", l_unlock}, {"__tostring", l_lock_tostring}, {NULL, NULL}};
    sgl_newclass(L, LOCK_MT, meta, methods);
}

void sgl_open_sys(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"interrupted", l_interrupted},
        {"clear_interrupted", l_clear_interrupted},
        {"catch_signals", l_catch_signals},
        {"time", l_time},
        {"sleep", l_sleep},
        {"isatty", l_isatty},
        {"hostname", l_hostname},
        {"getpid", l_getpid},
        {"terminal_width", l_terminal_width},
        {"set_num_threads", l_set_num_threads},
        {"conv_impl", l_conv_impl},
        {"conv_choices", l_conv_choices},
        {"get_num_threads", l_get_num_threads},
        {"root", l_root}, {"overrides", l_overrides},
        {"cpu_info", l_cpu_info},
        {"blas_core_for", l_blas_core_for},
        {"sgemm_gflops", l_sgemm_gflops},
        {"fsync_rename", l_fsync_rename},
        {"mkdir_p", l_mkdir_p},
        {"exists", l_exists},
        {"listdir", l_listdir},
        {"lock", l_lock},
        {NULL, NULL},
    };
    open_lock_mt(L);
    sgl_setfuncs(L, fns);
}
