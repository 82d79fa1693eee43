/* Fault tests: a checkpoint is never lost, a full disk is an error, and a
   NaN/Inf step is caught.

   1. Model-level write failures: lmu_model_save with the file size limit
      (RLIMIT_FSIZE, SIGXFSZ ignored, so write() fails with EFBIG) cut at
      every byte of the header and at a stride through the tensors. Each
      save returns LMU_ERR_IO with a message, the previous checkpoint stays
      bit-exact and loadable, and no temporary file is left.
   2. A full disk: a small tmpfs (root can mount one; skipped with a note
      otherwise). A save that does not fit next to the old file fails with
      LMU_ERR_IO and leaves the old file whole.
   3. kill -9 in the middle of saving a large checkpoint, in a loop: a child
      saves models A and B alternately over one path; the parent kills it at
      a random moment; the path then holds exactly A's or B's bytes.
   4. Non-finite values: a poisoned parameter makes lmu_model_forward return
      LMU_ERR_NONFINITE; a NaN/Inf gradient makes lmu_model_step return it;
      either way parameters and Adam state stay bit-identical, and training
      goes on once the poison is gone. Out-of-range ids are refused.

   Other modes (used by tests/test_valgrind.sh and tests/test_endian.sh):
     --train           a short training run of every model kind with a
                       checkpoint round trip, generation, tokenizer, token
                       and config files: for valgrind memcheck.
     --write-fixed DIR write a checkpoint, a token file and a safetensors
                       file of every dtype from fixed known values.
     --check-fixed DIR load those files and check every value bit-exactly.

   POSIX (fork, kill, setrlimit) and Linux (mount) test program, not
   library code. */
#define _GNU_SOURCE
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "lmu_test.h"
#include "fuzz/fuzz_vocab.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/mount.h>
#endif

#define DIR_ "build/faults_tmp"

static char g_err[256];

/* ---- helpers ---------------------------------------------------------- */

static int same_file(const char *path, const unsigned char *want, size_t n)
{
    size_t m;
    unsigned char *b = lt_slurp(path, &m);
    int ok = b && m == n && memcmp(b, want, n) == 0;
    free(b);
    return ok;
}

/* Files in dir whose name starts with prefix, other than `except`;
   removes them when rm. */
static int stray_files(const char *dir, const char *prefix, const char *except, int rm)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    char p[1024];
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        if (except && strcmp(e->d_name, except) == 0) continue;
        n++;
        if (rm) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
    }
    closedir(d);
    return n;
}

static lmu_config tiny_config(lmu_arch arch, lmu_mixer mixer, int vocab, int d)
{
    lmu_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.mixer = mixer;
    c.vocab_size = vocab;
    c.n_ctx = 16;
    c.d_model = d;
    c.n_layer = 1;
    return c;
}

static lmu_model *make_model(const lmu_config *c, uint64_t seed)
{
    lmu_model *m = NULL;
    if (lmu_model_create(&m, c, seed, g_err, sizeof g_err) != LMU_OK) {
        printf("  model create failed: %s\n", g_err);
        return NULL;
    }
    return m;
}

/* Same parameters, Adam moments and counters, bit for bit. */
static int same_state(const lmu_model *a, const lmu_model *b)
{
    size_t n = a->tape.param_size;
    if (n != b->tape.param_size) return 0;
    if (memcmp(a->tape.param, b->tape.param, n * sizeof(float)) != 0) return 0;
    if (memcmp(a->adam.m, b->adam.m, n * sizeof(float)) != 0) return 0;
    if (memcmp(a->adam.v, b->adam.v, n * sizeof(float)) != 0) return 0;
    return a->adam.step == b->adam.step && a->data_pos == b->data_pos;
}

static void fill_tokens(int *tok, int *tgt, int n, int vocab, unsigned seed)
{
    int i;
    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        tok[i] = (int)((seed >> 16) % (unsigned)vocab);
    }
    for (i = 0; i < n; i++) tgt[i] = tok[(i + 1) % n];
}

/* One training step; returns the forward's loss (NAN on any error). */
static float train_step(lmu_model *m, const int *tok, const int *tgt, int B, int T)
{
    float loss = NAN;
    if (lmu_model_forward(m, tok, tgt, B, T, &loss) != LMU_OK) return NAN;
    if (lmu_model_backward(m) != LMU_OK) return NAN;
    if (lmu_model_step(m, 1e-2f, 1.0f, NULL) != LMU_OK) return NAN;
    return loss;
}

/* ---- 1. write failures at every point of a model save ----------------- */

static void test_write_failures(void)
{
    const char *path = DIR_ "/ckpt.safetensors";
    lmu_config c = tiny_config(LMU_ARCH_LMU, LMU_MIXER_ATTN, 64, 8);
    lmu_model *old_m = make_model(&c, 1), *new_m = make_model(&c, 2), *back = NULL;
    unsigned char *old_bytes = NULL;
    size_t old_n = 0, new_n = 0, k, stride;
    int tok[16], tgt[16], bad_rc = 0, bad_old = 0, bad_tmp = 0, bad_msg = 0, tries = 0;
    struct rlimit old_lim, lim;
    void (*old_sig)(int);
    if (!old_m || !new_m) {
        LT_CHECK(0, "models for the write-failure sweep");
        goto done;
    }
    /* give the new model non-trivial optimizer state */
    fill_tokens(tok, tgt, 16, 64, 7);
    train_step(new_m, tok, tgt, 1, 16);
    new_m->data_pos = 1234;
    LT_CHECK(lmu_model_save(new_m, path, 1) == LMU_OK, "save the new model once (%s)", new_m->err);
    free(lt_slurp(path, &new_n));
    LT_CHECK(lmu_model_save(old_m, path, 1) == LMU_OK, "save the previous checkpoint (%s)", old_m->err);
    old_bytes = lt_slurp(path, &old_n);
    LT_CHECK(old_bytes && old_n > 1000 && new_n > 1000, "checkpoints of %lu and %lu bytes",
             (unsigned long)old_n, (unsigned long)new_n);
    if (!old_bytes || getrlimit(RLIMIT_FSIZE, &old_lim) != 0) goto done;
    old_sig = signal(SIGXFSZ, SIG_IGN);
    /* every byte of the header (the first ~2 KiB), then a prime stride */
    stride = new_n / 400 + 1;
    for (k = 0; k < new_n; k += (k < 2048 ? 1 : stride)) {
        lmu_result r;
        lim = old_lim;
        lim.rlim_cur = (rlim_t)k;
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0) break;
        r = lmu_model_save(new_m, path, 1);
        setrlimit(RLIMIT_FSIZE, &old_lim);
        tries++;
        if (r != LMU_ERR_IO) {
            if (bad_rc++ < 3) printf("  save cut at %lu bytes returned %s\n", (unsigned long)k, lmu_strerror(r));
        }
        if (!new_m->err[0] || !strstr(new_m->err, "safetensors")) bad_msg++;
        if (!same_file(path, old_bytes, old_n)) {
            if (bad_old++ < 3) printf("  save cut at %lu bytes changed the old checkpoint\n", (unsigned long)k);
            /* restore for the next round */
            setrlimit(RLIMIT_FSIZE, &old_lim);
            lmu_model_save(old_m, path, 1);
        }
        if (stray_files(DIR_, "ckpt.safetensors", "ckpt.safetensors", 1) != 0) bad_tmp++;
    }
    signal(SIGXFSZ, old_sig);
    LT_CHECK(tries > 2048 && bad_rc == 0, "%d saves cut at a byte limit: all LMU_ERR_IO (%d not)", tries, bad_rc);
    LT_CHECK(bad_msg == 0, "every cut save names the failure (%d without a message; last: %s)", bad_msg, new_m->err);
    LT_CHECK(bad_old == 0, "the previous checkpoint stays bit-exact after every cut save (%d changed)", bad_old);
    LT_CHECK(bad_tmp == 0, "no temporary file left behind (%d saves left one)", bad_tmp);
    LT_CHECK(lmu_model_load(&back, path, g_err, sizeof g_err) == LMU_OK && back && same_state(back, old_m),
             "the previous checkpoint loads, same parameters and optimizer state (%s)", g_err);
    lmu_model_free(back);
    back = NULL;
    /* and when the disk has room again, the new one replaces it whole */
    LT_CHECK(lmu_model_save(new_m, path, 1) == LMU_OK && lmu_model_load(&back, path, g_err, sizeof g_err) == LMU_OK &&
                 back && same_state(back, new_m),
             "with room again the new checkpoint saves and loads bit-exact (%s)", g_err);
    lmu_model_free(back);
    /* a folder that does not exist is an error too */
    LT_CHECK(lmu_model_save(new_m, DIR_ "/no/such/dir/x.safetensors", 1) == LMU_ERR_IO && new_m->err[0],
             "save into a missing folder: LMU_ERR_IO (%s)", new_m->err);
done:
    free(old_bytes);
    lmu_model_free(old_m);
    lmu_model_free(new_m);
    remove(path);
}

/* ---- 2. a really full disk (tmpfs) ------------------------------------- */

static void test_full_disk(void)
{
#ifdef __linux__
    const char *mnt = DIR_ "/mnt";
    const char *path = DIR_ "/mnt/ckpt.safetensors";
    lmu_config cs = tiny_config(LMU_ARCH_LMU, LMU_MIXER_FFN, 2048, 16);
    lmu_config cl = tiny_config(LMU_ARCH_LMU, LMU_MIXER_FFN, 4096, 16);
    lmu_model *ms = make_model(&cs, 3), *ml = make_model(&cl, 4), *ml2 = make_model(&cl, 5), *back = NULL;
    unsigned char *bytes = NULL;
    size_t sn = 0, ln = 0, n;
    char opts[64];
    lmu_result r;
    if (!ms || !ml || !ml2) {
        LT_CHECK(0, "models for the full-disk test");
        goto out;
    }
    /* sizes first, on the normal disk */
    lmu_model_save(ms, DIR_ "/s.safetensors", 1);
    lmu_model_save(ml, DIR_ "/l.safetensors", 1);
    free(lt_slurp(DIR_ "/s.safetensors", &sn));
    free(lt_slurp(DIR_ "/l.safetensors", &ln));
    remove(DIR_ "/s.safetensors");
    remove(DIR_ "/l.safetensors");
    mkdir(mnt, 0755);
    /* room for the large file alone (+ a few pages), not for two of them,
       nor for the small one next to it */
    snprintf(opts, sizeof opts, "size=%lu", (unsigned long)(((ln * 5 / 4) / 4096 + 2) * 4096));
    if (mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
        printf("  note: cannot mount a tmpfs here (%s): the full-disk test is covered only by the "
               "RLIMIT_FSIZE sweep\n", strerror(errno));
        goto out;
    }
    LT_CHECK(sn + ln > ln * 5 / 4 + 8192, "sizes: small %lu, large %lu bytes, tmpfs %s", (unsigned long)sn,
             (unsigned long)ln, opts);
    LT_CHECK(lmu_model_save(ms, path, 1) == LMU_OK, "small checkpoint fits (%s)", ms->err);
    bytes = lt_slurp(path, &n);
    r = lmu_model_save(ml, path, 1);
    LT_CHECK(r == LMU_ERR_IO && strstr(ml->err, "No space") != NULL,
             "large checkpoint next to it: disk full is LMU_ERR_IO (%s: %s)", lmu_strerror(r), ml->err);
    LT_CHECK(bytes && same_file(path, bytes, n), "the small checkpoint is untouched");
    LT_CHECK(stray_files(mnt, "ckpt", "ckpt.safetensors", 0) == 0, "no temporary file left on the full disk");
    LT_CHECK(lmu_model_load(&back, path, g_err, sizeof g_err) == LMU_OK && back && same_state(back, ms),
             "the small checkpoint still loads bit-exact (%s)", g_err);
    lmu_model_free(back);
    back = NULL;
    free(bytes);
    remove(path);
    LT_CHECK(lmu_model_save(ml, path, 1) == LMU_OK, "alone, the large checkpoint fits (%s)", ml->err);
    bytes = lt_slurp(path, &n);
    r = lmu_model_save(ml2, path, 1);
    LT_CHECK(r == LMU_ERR_IO, "replacing it with one of the same size does not fit: %s (%s)", lmu_strerror(r),
             ml2->err);
    LT_CHECK(bytes && same_file(path, bytes, n) && stray_files(mnt, "ckpt", "ckpt.safetensors", 0) == 0,
             "the old large checkpoint is untouched, no temporary file");
    LT_CHECK(lmu_model_load(&back, path, g_err, sizeof g_err) == LMU_OK && back && same_state(back, ml),
             "and loads bit-exact (%s)", g_err);
    lmu_model_free(back);
    free(bytes);
    {
        /* token files use the same rule */
        int32_t ids[4] = {1, 2, 3, 4};
        static int32_t big[1000000]; /* 2 MB of ids: more than the disk */
        remove(path);
        LT_CHECK(lmu_tokens_write_file(DIR_ "/mnt/t.tok", ids, 4, 16, g_err, sizeof g_err) == LMU_OK,
                 "a small token file fits (%s)", g_err);
        bytes = lt_slurp(DIR_ "/mnt/t.tok", &n);
        r = lmu_tokens_write_file(DIR_ "/mnt/t.tok", big, sizeof big / sizeof big[0], 16, g_err,
                                  sizeof g_err);
        LT_CHECK(r != LMU_OK && bytes && same_file(DIR_ "/mnt/t.tok", bytes, n),
                 "a token file too big for the disk: %s, the old one untouched (%s)", lmu_strerror(r), g_err);
        free(bytes);
    }
    umount2(mnt, MNT_DETACH);
out:
    lmu_model_free(ms);
    lmu_model_free(ml);
    lmu_model_free(ml2);
#endif
}

/* ---- 3. kill -9 during saves ------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_kill_during_save(void)
{
    const char *path = DIR_ "/big.safetensors";
    /* ~ 2.4 M floats with optimizer state: a 10 MB file */
    lmu_config c = tiny_config(LMU_ARCH_LMU, LMU_MIXER_FFN, 12000, 64);
    lmu_model *a = make_model(&c, 11), *b = make_model(&c, 12), *back = NULL;
    unsigned char *ab = NULL, *bb = NULL;
    size_t an = 0, bn = 0;
    double t0, t_save;
    int iter, iters = 24, good = 0, mid = 0, got_a = 0, got_b = 0, loaded = 0;
    if (!a || !b) {
        LT_CHECK(0, "models for the kill test");
        goto out;
    }
    b->data_pos = 99;
    lmu_model_save(b, path, 1);
    bb = lt_slurp(path, &bn);
    t0 = now_s();
    lmu_model_save(a, path, 1);
    t_save = now_s() - t0;
    ab = lt_slurp(path, &an);
    LT_CHECK(ab && bb && an == bn && an > 4000000 && memcmp(ab, bb, an) != 0,
             "two different %lu-byte checkpoints, one save takes %.1f ms", (unsigned long)an, 1e3 * t_save);
    if (!ab || !bb) goto out;
    for (iter = 0; iter < iters; iter++) {
        pid_t pid;
        struct timespec ts;
        double delay;
        unsigned char *cur;
        size_t cn;
        int st;
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            unsigned k;
            for (k = 0;; k++) lmu_model_save((k & 1) ? a : b, path, 1);
        }
        if (pid < 0) break;
        /* somewhere in the first few saves, most often mid-write */
        delay = t_save * (0.3 + 2.5 * (lt_uniform() + 1.0) * 0.5);
        ts.tv_sec = (time_t)delay;
        ts.tv_nsec = (long)((delay - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        if (stray_files(DIR_, "big.safetensors.tmp", NULL, 1) > 0) mid++;
        cur = lt_slurp(path, &cn);
        if (cur && cn == an && memcmp(cur, ab, an) == 0) good++, got_a++;
        else if (cur && cn == bn && memcmp(cur, bb, bn) == 0) good++, got_b++;
        else printf("  after kill %d the checkpoint is neither A nor B (%lu bytes)\n", iter, (unsigned long)cn);
        free(cur);
        if (iter % 8 == 0) { /* and it loads */
            if (lmu_model_load(&back, path, g_err, sizeof g_err) == LMU_OK) loaded++;
            else printf("  load after kill %d: %s\n", iter, g_err);
            lmu_model_free(back);
            back = NULL;
        }
    }
    LT_CHECK(good == iters, "after %d kill -9 the checkpoint is always A or B, bit-exact (%d good: %d A, %d B)",
             iters, good, got_a, got_b);
    LT_CHECK(loaded == (iters + 7) / 8, "and loads (%d of %d tried)", loaded, (iters + 7) / 8);
    LT_CHECK(mid > 0, "%d of %d kills landed in the middle of a save (a temporary file was left)", mid, iters);
out:
    free(ab);
    free(bb);
    lmu_model_free(a);
    lmu_model_free(b);
    remove(path);
}

/* ---- 4. NaN and Inf ---------------------------------------------------- */

static lmu_model *clone_model(const lmu_model *m)
{
    lmu_model *c = make_model(&m->cfg, 0);
    if (!c) return NULL;
    memcpy(c->tape.param, m->tape.param, m->tape.param_size * sizeof(float));
    memcpy(c->adam.m, m->adam.m, m->tape.param_size * sizeof(float));
    memcpy(c->adam.v, m->adam.v, m->tape.param_size * sizeof(float));
    c->adam.step = m->adam.step;
    c->data_pos = m->data_pos;
    return c;
}

/* A model of kind k (lt_kinds in lmu_test.h) at this file's small sizes,
   with two layers so that a kind with a window per layer has two windows. */
static lmu_config kind_config(int k, int vocab, int d)
{
    lmu_config c = tiny_config(LMU_ARCH_LMU, LMU_MIXER_FFN, vocab, d);
    c.n_layer = 2;
    lt_kind_apply(&c, k);
    return c;
}

static void test_nonfinite_kind(int kind)
{
    const char *name = lt_kinds[kind].name;
    lmu_config c = kind_config(kind, 32, 8);
    lmu_model *m = make_model(&c, 21), *snap = NULL;
    int tok[2 * 8], tgt[2 * 8], k;
    float loss = 0, poisons[3];
    size_t row0;
    lmu_result r;
    poisons[0] = NAN;
    poisons[1] = INFINITY;
    poisons[2] = -INFINITY;
    if (!m) {
        LT_CHECK(0, "%s: model", name);
        return;
    }
    fill_tokens(tok, tgt, 16, 32, 3);
    tok[0] = 5;
    /* a couple of good steps so Adam's state is not all zeros */
    loss = train_step(m, tok, tgt, 2, 8);
    loss += train_step(m, tok, tgt, 2, 8);
    LT_CHECK(loss == loss && m->adam.step == 2, "%s: two warm-up steps", name);
    snap = clone_model(m);
    if (!snap) return;
    /* a poisoned parameter: the embedding row of a token in the batch */
    row0 = (size_t)m->tape.tensors[m->wte].off + (size_t)5 * (size_t)c.d_model;
    for (k = 0; k < 3; k++) {
        float keep = m->tape.param[row0];
        double gn = 0;
        m->tape.param[row0] = poisons[k];
        r = lmu_model_forward(m, tok, tgt, 2, 8, &loss);
        LT_CHECK(r == LMU_ERR_NONFINITE && strstr(m->err, "loss") != NULL,
                 "%s: parameter = %g: forward reports LMU_ERR_NONFINITE (%s: %s)", name, (double)poisons[k],
                 lmu_strerror(r), m->err);
        /* a caller that ignores it still cannot apply the step */
        r = lmu_model_backward(m);
        if (r == LMU_OK) r = lmu_model_step(m, 1e-2f, 1.0f, &gn);
        m->tape.param[row0] = keep;
        LT_CHECK(r == LMU_ERR_NONFINITE && same_state(m, snap),
                 "%s: ...and backward + step refuse it (%s), parameters and Adam state untouched", name,
                 lmu_strerror(r));
    }
    /* a finite loss but a poisoned gradient */
    for (k = 0; k < 3; k++) {
        int clip;
        for (clip = 0; clip < 2; clip++) {
            r = lmu_model_forward(m, tok, tgt, 2, 8, &loss);
            if (r == LMU_OK) r = lmu_model_backward(m);
            LT_CHECK(r == LMU_OK, "%s: forward + backward (%s)", name, m->err);
            m->tape.param_grad[(size_t)(k * 7 + clip) % m->tape.param_size] = poisons[k];
            r = lmu_model_step(m, 1e-2f, clip ? 1.0f : 0.0f, NULL);
            LT_CHECK(r == LMU_ERR_NONFINITE && strstr(m->err, "skipped") && same_state(m, snap),
                     "%s: gradient = %g%s: step returns LMU_ERR_NONFINITE, nothing changed (%s)", name,
                     (double)poisons[k], clip ? " with clipping" : "", m->err);
        }
    }
    /* out-of-range ids are refused, not read out of bounds */
    k = tok[3];
    tok[3] = 32;
    LT_CHECK(lmu_model_forward(m, tok, tgt, 2, 8, &loss) == LMU_ERR_RANGE, "%s: token id = vocab refused", name);
    tok[3] = -1;
    LT_CHECK(lmu_model_forward(m, tok, tgt, 2, 8, &loss) == LMU_ERR_RANGE, "%s: token id -1 refused", name);
    tok[3] = k;
    k = tgt[5];
    tgt[5] = 1 << 20;
    LT_CHECK(lmu_model_forward(m, tok, tgt, 2, 8, &loss) == LMU_ERR_RANGE, "%s: target out of range refused", name);
    tgt[5] = k;
    /* the poison gone, training goes on from the same state */
    loss = train_step(m, tok, tgt, 2, 8);
    LT_CHECK(loss == loss && m->adam.step == snap->adam.step + 1 && !same_state(m, snap),
             "%s: after the skipped steps training resumes (loss %.4f, step %lu -> %lu)", name, (double)loss,
             (unsigned long)snap->adam.step, (unsigned long)m->adam.step);
    lmu_model_free(snap);
    lmu_model_free(m);
}

static void test_nonfinite(void)
{
    int k;
    for (k = 0; k < LT_N_KINDS; k++) test_nonfinite_kind(k);
}

/* ---- --train: a short run for valgrind -------------------------------- */

static int same_config(const lmu_config *a, const lmu_config *b)
{
    return a->arch == b->arch && a->mixer == b->mixer && a->vocab_size == b->vocab_size &&
           a->n_ctx == b->n_ctx && a->d_model == b->d_model && a->n_layer == b->n_layer && a->q == b->q &&
           a->q_prime == b->q_prime && a->theta == b->theta && a->d_pre == b->d_pre && a->d_ff == b->d_ff &&
           a->n_head == b->n_head;
}

static void train_kind(int kind)
{
    const char *name = lt_kinds[kind].name;
    lmu_config c = kind_config(kind, 48, 8);
    lmu_model *m = make_model(&c, 31), *back = NULL;
    int tok[2 * 12], tgt[2 * 12], i, t, bad = 0;
    float first = 0, last = 0;
    lmu_gen g;
    lmu_rng rng;
    if (!m) {
        LT_CHECK(0, "%s: model", name);
        return;
    }
    fill_tokens(tok, tgt, 24, 48, 5);
    for (i = 0; i < 6; i++) {
        float l = train_step(m, tok, tgt, 2, 12);
        if (i == 0) first = l;
        last = l;
        if (!(l == l)) bad++;
    }
    LT_CHECK(bad == 0 && last < first, "%s: 6 training steps, loss %.4f -> %.4f", name, (double)first, (double)last);
    LT_CHECK(lmu_model_save(m, DIR_ "/train.safetensors", 1) == LMU_OK &&
                 lmu_model_load(&back, DIR_ "/train.safetensors", g_err, sizeof g_err) == LMU_OK && back &&
                 same_state(back, m),
             "%s: checkpoint round trip (%s)", name, g_err);
    lmu_rng_seed(&rng, 7);
    memset(&g, 0, sizeof g);
    if (back && lmu_gen_create(&g, back, 16) == LMU_OK) {
        int tk = 1, ok = 1;
        for (t = 0; t < 10 && ok; t++) {
            ok = lmu_gen_feed(&g, tk) == LMU_OK;
            tk = lmu_gen_sample(&g, 0.8f, 10, 0.95f, &rng);
            ok = ok && tk >= 0 && tk < 48;
        }
        LT_CHECK(ok, "%s: 10 generated tokens (%s)", name, g.err);
        lmu_gen_free(&g);
    } else {
        LT_CHECK(0, "%s: generator", name);
    }
    lmu_model_free(back);
    lmu_model_free(m);
    remove(DIR_ "/train.safetensors");
}

static void run_train(void)
{
    static char js[FV_JSON_CAP], bpe[FV_BPE_CAP];
    lmu_tokenizer *tk = NULL;
    const char *text = " the abc\n\nab\xc3\xa9 \xff\x80<|endoftext|>0000";
    char back[256], cfgtxt[512];
    int32_t ids[128];
    size_t jn, bn, n = 0, m = 0;
    int vocab = 0, k;
    lmu_tokens tf;
    lmu_config c, c2;
    for (k = 0; k < LT_N_KINDS; k++) train_kind(k);
    fv_make(js, &jn, bpe, &bn);
    LT_CHECK(lmu_tokenizer_load_memory(&tk, js, jn, bpe, bn, g_err, sizeof g_err) == LMU_OK,
             "tokenizer loads (%s)", g_err);
    if (tk) {
        LT_CHECK(lmu_encode(tk, text, strlen(text), 1, ids, 128, &n) == LMU_OK &&
                     lmu_decode(tk, ids, n, back, sizeof back, &m) == LMU_OK && m == strlen(text) &&
                     memcmp(back, text, m) == 0,
                 "encode/decode round trip (%lu ids)", (unsigned long)n);
        vocab = lmu_tokenizer_vocab_size(tk);
        lmu_tokenizer_free(tk);
    }
    LT_CHECK(lmu_tokens_write_file(DIR_ "/t.tok", ids, n, vocab, g_err, sizeof g_err) == LMU_OK &&
                 lmu_tokens_load_file(&tf, DIR_ "/t.tok", g_err, sizeof g_err) == LMU_OK && tf.count == n,
             "token file round trip (%s)", g_err);
    lmu_tokens_free(&tf);
    remove(DIR_ "/t.tok");
    lmu_config_preset(&c, "lmu-55k");
    lmu_config_format(&c, cfgtxt, sizeof cfgtxt);
    memset(&c2, 0, sizeof c2);
    LT_CHECK(lmu_config_parse(&c2, cfgtxt, strlen(cfgtxt), g_err, sizeof g_err) == LMU_OK &&
                 lmu_config_resolve(&c2, g_err, sizeof g_err) == LMU_OK && same_config(&c, &c2),
             "config text round trip (%s)", g_err);
}

/* ---- --write-fixed / --check-fixed: files from known values ----------- */

/* Exactly representable values with varied bit patterns (sign, exponent,
   mantissa), so a byte-order mistake cannot cancel out. */
static float fixed_value(size_t i, int salt)
{
    int v = (int)((i * 2654435761u + (unsigned)salt * 40503u) % 4001u) - 2000;
    return (float)v / 256.0f;
}

#define FIX_NTOK 1000

static void fixed_model_values(lmu_model *m)
{
    int k;
    /* tensor by tensor: the block has alignment padding that is not saved;
       Adam state exists (and is saved) for trainable tensors only */
    for (k = 0; k < m->tape.n_params; k++) {
        const lmu_tensor *x = &m->tape.tensors[k];
        size_t cnt = 1, j;
        int d;
        for (d = 0; d < x->ndim; d++) cnt *= (size_t)x->shape[d];
        for (j = x->off; j < x->off + cnt; j++) {
            m->tape.param[j] = fixed_value(j, 1);
            if (x->frozen) continue;
            m->adam.m[j] = fixed_value(j, 2);
            m->adam.v[j] = fabsf(fixed_value(j, 3));
        }
    }
    m->adam.step = 0x0102030405ULL;
    m->data_pos = 0x0A0B0C0D0E0FULL;
}

/* One tensor per dtype family with fixed bytes, in host order. */
static uint8_t fx_u8[5] = {1, 2, 0x80, 0xFE, 0xFF};
static int16_t fx_i16[4] = {1, -2, 0x1234, -32768};
static int32_t fx_i32[4] = {1, -2, 0x12345678, -2147483647};
static uint64_t fx_u64[3] = {1, 0x0102030405060708ULL, 0xFFFFFFFFFFFFFFFEULL};
static double fx_f64[3] = {1.0, -2.5e-300, 3.141592653589793};
static float fx_f32[3] = {1.0f, -0.15625f, 3.4028234e38f};

static size_t fixed_st(lmu_st_tensor *t)
{
    memset(t, 0, 6 * sizeof *t);
    t[0].name = "u8"; t[0].dtype = LMU_ST_U8; t[0].ndim = 1; t[0].shape[0] = 5; t[0].data = fx_u8;
    t[1].name = "i16"; t[1].dtype = LMU_ST_I16; t[1].ndim = 2; t[1].shape[0] = 2; t[1].shape[1] = 2; t[1].data = fx_i16;
    t[2].name = "i32"; t[2].dtype = LMU_ST_I32; t[2].ndim = 1; t[2].shape[0] = 4; t[2].data = fx_i32;
    t[3].name = "u64"; t[3].dtype = LMU_ST_U64; t[3].ndim = 1; t[3].shape[0] = 3; t[3].data = fx_u64;
    t[4].name = "f64"; t[4].dtype = LMU_ST_F64; t[4].ndim = 1; t[4].shape[0] = 3; t[4].data = fx_f64;
    t[5].name = "f32"; t[5].dtype = LMU_ST_F32; t[5].ndim = 0; t[5].data = fx_f32; /* scalar */
    return 6;
}

static lmu_config fixed_config(void)
{
    return tiny_config(LMU_ARCH_LMU, LMU_MIXER_ATTN, 40, 8);
}

static int write_fixed(const char *dir)
{
    char p[1024];
    lmu_config c = fixed_config();
    lmu_model *m = make_model(&c, 1);
    lmu_st_tensor t[6];
    lmu_st_meta meta[1] = {{"who", "fixed \xc3\xa9"}};
    int32_t ids[FIX_NTOK];
    size_t i, nt = fixed_st(t);
    int ok = m != NULL;
    if (m) {
        fixed_model_values(m);
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        ok = ok && lmu_model_save(m, p, 1) == LMU_OK;
        lmu_model_free(m);
    }
    for (i = 0; i < FIX_NTOK; i++) ids[i] = (int32_t)((i * 40503u) % 50257u);
    snprintf(p, sizeof p, "%s/ids.tok", dir);
    ok = ok && lmu_tokens_write_file(p, ids, FIX_NTOK, 50257, g_err, sizeof g_err) == LMU_OK;
    snprintf(p, sizeof p, "%s/dtypes.safetensors", dir);
    ok = ok && lmu_st_save_file(p, t, nt, meta, 1, g_err, sizeof g_err) == LMU_OK;
    printf("write-fixed %s: %s %s\n", dir, ok ? "ok" : "FAILED", ok ? "" : g_err);
    return ok ? 0 : 1;
}

static void check_fixed(const char *dir)
{
    char p[1024];
    lmu_config c = fixed_config();
    lmu_model *ref = make_model(&c, 1), *m = NULL;
    lmu_tokens tf;
    lmu_st_file f;
    lmu_st_tensor t[6];
    size_t i, nt = fixed_st(t), bad = 0;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (ref) fixed_model_values(ref);
    LT_CHECK(ref && lmu_model_load(&m, p, g_err, sizeof g_err) == LMU_OK && m && same_state(m, ref),
             "checkpoint from %s: every parameter, moment and counter bit-exact (%s)", dir, g_err);
    lmu_model_free(m);
    lmu_model_free(ref);
    snprintf(p, sizeof p, "%s/ids.tok", dir);
    memset(&tf, 0, sizeof tf);
    if (lmu_tokens_load_file(&tf, p, g_err, sizeof g_err) == LMU_OK && tf.count == FIX_NTOK)
        for (i = 0; i < FIX_NTOK; i++) bad += tf.ids[i] != (uint16_t)((i * 40503u) % 50257u);
    else
        bad = 1;
    LT_CHECK(bad == 0 && tf.vocab_size == 50257, "token file from %s: every id (%s)", dir, g_err);
    lmu_tokens_free(&tf);
    snprintf(p, sizeof p, "%s/dtypes.safetensors", dir);
    memset(&f, 0, sizeof f);
    bad = 0;
    if (lmu_st_load_file(&f, p, g_err, sizeof g_err) == LMU_OK) {
        for (i = 0; i < nt; i++) {
            unsigned char buf[64];
            size_t k, cnt = 1, es = lmu_st_dtype_size(t[i].dtype);
            for (k = 0; k < (size_t)t[i].ndim; k++) cnt *= t[i].shape[k];
            if (lmu_st_read(&f, t[i].name, t[i].dtype, t[i].shape, t[i].ndim, buf, g_err, sizeof g_err) != LMU_OK ||
                memcmp(buf, t[i].data, cnt * es) != 0) {
                printf("  tensor %s differs\n", t[i].name);
                bad++;
            }
        }
        if (!lmu_st_meta_get(&f, "who") || strcmp(lmu_st_meta_get(&f, "who"), "fixed \xc3\xa9") != 0) bad++;
        lmu_st_close(&f);
    } else {
        bad = 1;
    }
    LT_CHECK(bad == 0, "safetensors of six dtypes from %s: every value (%s)", dir, g_err);
}

int main(int argc, char **argv)
{
    mkdir("build", 0755);
    mkdir(DIR_, 0755);
    if (argc >= 3 && strcmp(argv[1], "--write-fixed") == 0) return write_fixed(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "--check-fixed") == 0) {
        lt_begin("test_faults_fixed", 1, argv);
        check_fixed(argv[2]);
        return lt_end();
    }
    if (argc >= 2 && strcmp(argv[1], "--train") == 0) {
        lt_begin("test_faults_train", 1, argv);
        run_train();
        return lt_end();
    }
    lt_begin("test_faults", argc, argv);
    lt_seed(20240601);
    test_nonfinite();
    test_write_failures();
    test_full_disk();
    test_kill_during_save();
    return lt_end();
}
