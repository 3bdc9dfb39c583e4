/*
 * pamloop: drive real libpam in process, to time one login per
 * pam_start / pam_authenticate / pam_end cycle, and to race N processes
 * with one valid code.  Part of `make bench` (bench/run.sh); not installed.
 *
 * Users come from a TSV file "name<TAB>hexkey" (one line per enrolled user,
 * written by bench/gen.py).  The TOTP code (RFC 6238, HMAC-SHA1, 30 s, 6
 * digits) is computed here before the timer starts, from the current clock.
 *
 *   pamloop login SERVICE USERS.tsv MODE FIRST COUNT STRIDE [RESTORE_SRC RESTORE_DST]
 *       MODE ok|bad.  Login k (0 <= k < COUNT) uses user (FIRST + k*STRIDE)
 *       mod nusers.  Prints "<microseconds> <pam_rc> <requested fail delay us>"
 *       per login on stdout.
 *       With RESTORE_SRC/RESTORE_DST (templates, %u = user name), the
 *       pristine state file is copied over the live one and fsynced before
 *       each login, outside the timed region, so one user can log in again
 *       with the same code (replay protection reset).
 *   pamloop race SERVICE USERS.tsv USERIDX PROCS ROUNDS [RESTORE_SRC RESTORE_DST]
 *       Each round: restore the user's state, start PROCS processes that each
 *       pam_start, wait at a barrier, then pam_authenticate with the same
 *       valid code at once.  Prints "<round> <successes>" per round.
 *   pamloop fsync DIR COUNT
 *       Reference, no PAM: time COUNT durable replaces of a 400-byte file
 *       (write temp, fsync, rename, fsync dir), same output as login.
 *   pamloop dlopen MODULE.so COUNT
 *       Reference, no PAM: time COUNT dlopen(RTLD_NOW) + dlclose of a module.
 *
 * Build: cc -O2 -o pamloop pamloop.c -lpam
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <security/pam_appl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-1 (FIPS 180-4) and HMAC-SHA1 (RFC 2104), just enough for TOTP ---- */

typedef struct {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} sha1_ctx;

static uint32_t rol(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

static void sha1_block(sha1_ctx *c, const uint8_t *p)
{
    uint32_t w[80], a, b, d, e, f, k, t, cc;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3]; e = c->h[4];
    for (int i = 0; i < 80; i++) {
        if (i < 20) { f = (b & cc) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ cc ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDC; }
        else { f = b ^ cc ^ d; k = 0xCA62C1D6; }
        t = rol(a, 5) + f + e + k + w[i];
        e = d; d = cc; cc = rol(b, 30); b = a; a = t;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

static void sha1_init(sha1_ctx *c)
{
    static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->n = 0;
}

static void sha1_update(sha1_ctx *c, const uint8_t *p, size_t len)
{
    c->len += len;
    while (len--) {
        c->buf[c->n++] = *p++;
        if (c->n == 64) { sha1_block(c, c->buf); c->n = 0; }
    }
}

static void sha1_final(sha1_ctx *c, uint8_t out[20])
{
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, z = 0, lenb[8];
    sha1_update(c, &pad, 1);
    while (c->n != 56) sha1_update(c, &z, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(c, lenb, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24); out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8); out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

static void hmac_sha1(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t out[20])
{
    uint8_t k[64] = {0}, ipad[64], opad[64], inner[20];
    sha1_ctx c;
    if (klen > 64) { sha1_init(&c); sha1_update(&c, key, klen); sha1_final(&c, k); }
    else memcpy(k, key, klen);
    for (int i = 0; i < 64; i++) { ipad[i] = k[i] ^ 0x36; opad[i] = k[i] ^ 0x5c; }
    sha1_init(&c); sha1_update(&c, ipad, 64); sha1_update(&c, msg, mlen); sha1_final(&c, inner);
    sha1_init(&c); sha1_update(&c, opad, 64); sha1_update(&c, inner, 20); sha1_final(&c, out);
}

static void totp_code(const uint8_t *key, size_t klen, time_t now, char out[7])
{
    uint64_t t = (uint64_t)now / 30;
    uint8_t msg[8], mac[20];
    for (int i = 0; i < 8; i++) msg[i] = (uint8_t)(t >> (56 - 8 * i));
    hmac_sha1(key, klen, msg, 8, mac);
    int off = mac[19] & 0x0f;
    uint32_t v = ((uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
                  (uint32_t)mac[off + 2] << 8 | mac[off + 3]) % 1000000;
    snprintf(out, 7, "%06u", v);
}

/* ---- users ---- */

typedef struct {
    char name[64];
    uint8_t key[64];
    size_t klen;
} user;

static user *users;
static size_t nusers;

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void load_users(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t cap = 1024;
    if (!f) { perror(path); exit(2); }
    users = calloc(cap, sizeof *users);
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *hex;
        if (!tab) continue;
        *tab = 0;
        hex = tab + 1;
        if (nusers == cap) { cap *= 2; users = realloc(users, cap * sizeof *users); }
        if (!users) { perror("realloc"); exit(2); }
        user *u = &users[nusers++];
        memset(u, 0, sizeof *u);
        if (strlen(line) >= sizeof u->name) { fprintf(stderr, "user name too long\n"); exit(2); }
        memcpy(u->name, line, strlen(line) + 1);
        for (size_t i = 0; hexval(hex[2 * i]) >= 0 && hexval(hex[2 * i + 1]) >= 0 && i < sizeof u->key; i++) {
            u->key[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
            u->klen = i + 1;
        }
    }
    fclose(f);
    if (nusers == 0) { fprintf(stderr, "%s: no users\n", path); exit(2); }
}

/* ---- restore a pristine state file (untimed) ---- */

static void expand(const char *tmpl, const char *name, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = tmpl; *p && o + 1 < cap; p++) {
        if (p[0] == '%' && p[1] == 'u') {
            o += (size_t)snprintf(out + o, cap - o, "%s", name);
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o < cap ? o : cap - 1] = 0;
}

static void restore(const char *src_t, const char *dst_t, const char *name)
{
    char src[4096], dst[4096];
    static char *buf;
    static size_t bufcap;
    struct stat st;
    if (!src_t) return;
    expand(src_t, name, src, sizeof src);
    expand(dst_t, name, dst, sizeof dst);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0 || fstat(in, &st) < 0) { perror(src); exit(2); }
    if ((size_t)st.st_size > bufcap) {
        bufcap = (size_t)st.st_size;
        buf = realloc(buf, bufcap);
        if (!buf) { perror("realloc"); exit(2); }
    }
    ssize_t n = read(in, buf, (size_t)st.st_size);
    close(in);
    if (n != st.st_size) { fprintf(stderr, "short read %s\n", src); exit(2); }
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) { perror(dst); exit(2); }
    if (write(out, buf, (size_t)n) != n || fsync(out) < 0) { perror(dst); exit(2); }
    close(out);
}

/* ---- PAM conversation: answer every prompt with the code ---- */

static int conv_fn(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    const char *code = data;
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
            r[i].resp = strdup(code);
            if (!r[i].resp) {
                for (int j = 0; j < i; j++) free(r[j].resp);
                free(r);
                return PAM_BUF_ERR;
            }
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void make_code(const user *u, int bad, char code[7])
{
    totp_code(u->key, u->klen, time(NULL), code);
    if (bad) code[5] = (char)('0' + (code[5] - '0' + 5) % 10); /* never the current code */
}

/* libpam sleeps after a failed pam_authenticate when a module asked for a
   delay (pam_fail_delay), unless the application installs its own
   PAM_FAIL_DELAY function.  The harness installs one that only records the
   request, so failure timings are the modules' work, not their sleep. */
static unsigned int last_delay_us;

static void no_delay(int retval, unsigned usec_delay, void *appdata)
{
    (void)retval;
    (void)appdata;
    last_delay_us = usec_delay;
}

static int do_login(const char *service, const user *u, const char *code)
{
    struct pam_conv conv = {conv_fn, (void *)code};
    pam_handle_t *ph = NULL;
    int rc = pam_start(service, u->name, &conv, &ph);
    if (rc != PAM_SUCCESS) return rc;
    last_delay_us = 0;
    union { void (*fn)(int, unsigned, void *); const void *item; } delay = {.fn = no_delay};
    pam_set_item(ph, PAM_FAIL_DELAY, delay.item);
    rc = pam_authenticate(ph, 0);
    pam_end(ph, rc);
    return rc;
}

static int cmd_login(int argc, char **argv)
{
    if (argc != 8 && argc != 10) return -1;
    const char *service = argv[2], *mode = argv[4];
    long first = atol(argv[5]), count = atol(argv[6]), stride = atol(argv[7]);
    const char *src = argc == 10 ? argv[8] : NULL, *dst = argc == 10 ? argv[9] : NULL;
    int bad = strcmp(mode, "bad") == 0;
    load_users(argv[3]);
    /* One untimed warm-up login as a user nobody knows, so the first timed
       login does not pay for first-touch page faults of libpam and the
       libraries the module pulls in; it changes no enrolled user's state. */
    {
        user nobody = {.name = "bench-warmup-nobody", .klen = 1};
        do_login(service, &nobody, "000000");
    }
    for (long k = 0; k < count; k++) {
        const user *u = &users[(size_t)(first + k * stride) % nusers];
        char code[7];
        restore(src, dst, u->name);
        make_code(u, bad, code);
        double t0 = now_us();
        int rc = do_login(service, u, code);
        double t1 = now_us();
        printf("%.1f %d %u\n", t1 - t0, rc, last_delay_us);
    }
    return 0;
}

/* Reference: one durable small-file replace, what a careful module must pay
   per accepted code: write a temp file, fsync, rename over, fsync the dir. */
static int cmd_fsync(int argc, char **argv)
{
    if (argc != 4) return -1;
    const char *dir = argv[2];
    long count = atol(argv[3]);
    char tmp[4096], dst[4096], body[400];
    memset(body, '#', sizeof body);
    snprintf(tmp, sizeof tmp, "%s/durable.tmp", dir);
    snprintf(dst, sizeof dst, "%s/durable.toml", dir);
    for (long k = 0; k < count; k++) {
        double t0 = now_us();
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, body, sizeof body) != (ssize_t)sizeof body || fsync(fd) < 0 || close(fd) < 0 ||
            rename(tmp, dst) < 0) { perror(tmp); return 2; }
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0 || close(dfd) < 0) { perror(dir); return 2; }
        double t1 = now_us();
        printf("%.1f 0 0\n", t1 - t0);
    }
    return 0;
}

/* Reference: what loading a module costs by itself, as libpam does at every
   pam_start / pam_end (dlopen RTLD_NOW, dlclose); libpam is already mapped. */
static int cmd_dlopen(int argc, char **argv)
{
    if (argc != 4) return -1;
    long count = atol(argv[3]);
    for (long k = 0; k < count; k++) {
        double t0 = now_us();
        void *h = dlopen(argv[2], RTLD_NOW);
        if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
        dlclose(h);
        double t1 = now_us();
        printf("%.1f 0 0\n", t1 - t0);
    }
    return 0;
}

static int cmd_race(int argc, char **argv)
{
    if (argc != 7 && argc != 9) return -1;
    const char *service = argv[2];
    const char *src = argc == 9 ? argv[7] : NULL, *dst = argc == 9 ? argv[8] : NULL;
    long idx = atol(argv[4]), procs = atol(argv[5]), rounds = atol(argv[6]);
    load_users(argv[3]);
    const user *u = &users[(size_t)idx % nusers];
    fflush(stdout);
    for (long r = 0; r < rounds; r++) {
        int ready[2], go[2], turn[2];
        char code[7];
        restore(src, dst, u->name);
        make_code(u, 0, code);
        if (pipe(ready) < 0 || pipe(go) < 0 || pipe(turn) < 0) { perror("pipe"); return 2; }
        /* pam_wrapper sets itself up again in each child at its first
           pam_start (a fresh /tmp/pam.<c>, chosen with a racy check), so the
           children take turns for pam_start: one token circulates in `turn`.
           Only pam_authenticate runs concurrently, after the gate opens. */
        if (write(turn[1], "t", 1) != 1) { perror("turn"); return 2; }
        for (long p = 0; p < procs; p++) {
            pid_t pid = fork();
            if (pid < 0) { perror("fork"); return 2; }
            if (pid == 0) {
                struct pam_conv conv = {conv_fn, code};
                pam_handle_t *ph = NULL;
                char c;
                close(ready[0]);
                close(go[1]);
                if (read(turn[0], &c, 1) != 1) _exit(3);
                int rc = pam_start(service, u->name, &conv, &ph);
                if (write(turn[1], "t", 1) != 1) _exit(3);
                close(turn[0]);
                close(turn[1]);
                if (write(ready[1], "r", 1) != 1) _exit(3);
                close(ready[1]); /* so a child that dies early cannot hang the parent */
                if (read(go[0], &c, 1) < 0) _exit(3); /* EOF when the parent opens the gate */
                if (rc == PAM_SUCCESS) {
                    rc = pam_authenticate(ph, 0);
                    pam_end(ph, rc);
                }
                /* exit, not _exit: pam_wrapper's destructor removes this
                   child's own /tmp/pam.<c> */
                exit(rc == PAM_SUCCESS ? 0 : 1);
            }
        }
        close(turn[0]);
        close(turn[1]);
        close(ready[1]);
        close(go[0]);
        for (long p = 0; p < procs; p++) {
            char c;
            if (read(ready[0], &c, 1) != 1) { fprintf(stderr, "child died before the gate\n"); break; }
        }
        close(go[1]); /* open the gate */
        close(ready[0]);
        int ok = 0, status;
        for (long p = 0; p < procs; p++)
            if (wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) ok++;
        printf("%ld %d\n", r, ok);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = -1;
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if (argc > 1 && strcmp(argv[1], "login") == 0) rc = cmd_login(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "race") == 0) rc = cmd_race(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "fsync") == 0) rc = cmd_fsync(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "dlopen") == 0) rc = cmd_dlopen(argc, argv);
    if (rc < 0) {
        fprintf(stderr,
                "usage: pamloop login SERVICE USERS.tsv ok|bad FIRST COUNT STRIDE [RESTORE_SRC RESTORE_DST]\n"
                "       pamloop race SERVICE USERS.tsv USERIDX PROCS ROUNDS [RESTORE_SRC RESTORE_DST]\n"
                "       pamloop fsync DIR COUNT\n"
                "       pamloop dlopen MODULE.so COUNT\n");
        return 2;
    }
    fflush(stdout);
    return rc;
}
