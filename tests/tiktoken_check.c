/* tiktoken_check.c - compares lmu_encode with tiktoken's ids on the set that
   tests/tiktoken_cases.js wrote; run by tests/test_tiktoken.sh.

   build: cc -std=c99 -O2 -fopenmp -I. tests/tiktoken_check.c -o build/tiktoken_check \
          $(pkg-config --cflags --libs stb) -lm
   usage: build/tiktoken_check CASES.bin ENCODER.json VOCAB.bpe [CLASSES UNASSIGNED.txt] [-v]

   Every case: the ids must equal tiktoken's (modes 0, 1), decode must give
   back the text's bytes (all modes), the streaming decoder must give the same
   bytes, and lmu_encode_parallel the same ids. With CLASSES (tiktoken's
   regex engine's class of every code point: bit 1 \p{L}, 2 \p{N}, 4 \s;
   0xFF for surrogates) each code point's class must equal our table's,
   except at code points unassigned in our tables' Unicode version (listed in
   UNASSIGNED.txt): those are counted and reported as version differences.
   Prints one closing line
   "tiktoken: N passed, N failed". */
#define LMU_IMPLEMENTATION
#include "lmu.h"
#include "tests/lmu_test.h"

static int get_u32(const unsigned char *b, size_t n, size_t *o, uint32_t *v)
{
    if (n - *o < 4 || *o > n) return 0;
    *v = (uint32_t)b[*o] | (uint32_t)b[*o + 1] << 8 | (uint32_t)b[*o + 2] << 16 | (uint32_t)b[*o + 3] << 24;
    *o += 4;
    return 1;
}

/* Code points our class table must agree on, read from the tiktoken probe. */
static void check_classes(const char *classes_path, const char *unassigned_path)
{
    size_t n, cp, newer = 0, bad = 0, shown = 0, counted = 0;
    unsigned char *cls = lt_slurp(classes_path, &n), *unassigned = (unsigned char *)calloc(0x110000, 1);
    FILE *f = fopen(unassigned_path, "r");
    char line[128];
    LT_CHECK(cls && n == 0x110000 && f && unassigned, "read %s and %s", classes_path, unassigned_path);
    if (!cls || n != 0x110000 || !f || !unassigned) { free(cls); free(unassigned); if (f) fclose(f); return; }
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b, x;
        if (line[0] == '#' || sscanf(line, "%lx..%lx", &a, &b) != 2 || b >= 0x110000) continue;
        for (x = a; x <= b; x++) unassigned[x] = 1;
    }
    fclose(f);
    for (cp = 0; cp < 0x110000; cp++) {
        static const unsigned char bit[4] = {0, 1, 2, 4};
        unsigned mine;
        if (cls[cp] == 0xFF) continue;
        counted++;
        mine = bit[lmu__uc_class((uint32_t)cp)];
        if (mine == cls[cp]) continue;
        if (unassigned[cp]) {
            if (newer++ < 8) printf("    U+%04lX: unassigned in Unicode %s, tiktoken's engine has class %u\n", (unsigned long)cp, lmu_tokenizer_unicode_version(), cls[cp]);
            continue;
        }
        bad++;
        if (shown++ < 20) printf("    U+%04lX: our class %u, tiktoken's %u\n", (unsigned long)cp, mine, cls[cp]);
    }
    LT_CHECK(bad == 0, "character classes of %lu code points agree with tiktoken's regex engine (%lu differ)",
             (unsigned long)counted, (unsigned long)bad);
    printf("tiktoken: %lu code points unassigned in Unicode %s are letters/numbers/spaces for tiktoken (newer Unicode); "
           "text using them may get other ids\n", (unsigned long)newer, lmu_tokenizer_unicode_version());
    free(cls);
    free(unassigned);
}

static void show_bytes(const unsigned char *s, size_t n)
{
    size_t i;
    printf("    text: \"");
    for (i = 0; i < n && i < 160; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '"' && s[i] != '\\') putchar(s[i]);
        else printf("\\x%02x", s[i]);
    }
    printf("%s\"\n", n > 160 ? "..." : "");
}

int main(int argc, char **argv)
{
    size_t n, o = 12, k;
    unsigned char *b;
    uint32_t count, c;
    lmu_tokenizer *tok;
    char err[256];
    lmu_result r;
    size_t ids_total = 0, ids_matched_cases = 0, sweep_bad = 0, shown = 0;
    lt_begin("tiktoken", argc, argv);
    if (argc < 4) { printf("usage: %s CASES.bin ENCODER.json VOCAB.bpe [-v]\n", argv[0]); return 2; }
    b = lt_slurp(argv[1], &n);
    if (!b || n < 16 || memcmp(b, "LMUTIKTOKEN1", 12) != 0) {
        LT_CHECK(0, "read %s", argv[1]);
        return lt_end();
    }
    r = lmu_tokenizer_load_files(&tok, argv[2], argv[3], err, sizeof err);
    LT_CHECK(r == LMU_OK, "load GPT-2 files: %s", err);
    if (r != LMU_OK) return lt_end();
    get_u32(b, n, &o, &count);
    for (c = 0; c < count; c++) {
        uint32_t mode, nl, tl, ni, i;
        const unsigned char *name, *text;
        int32_t *want, *got, *gotp;
        char *dec, *sdec;
        size_t ng = 0, ngp = 0, nd = 0, ns = 0, cap;
        int ok = 1, is_sweep;
        lmu_decoder d;
        if (o >= n) break;
        mode = b[o++];
        if (!get_u32(b, n, &o, &nl) || n - o < nl) break;
        name = b + o; o += nl;
        if (!get_u32(b, n, &o, &tl) || n - o < tl) break;
        text = b + o; o += tl;
        if (!get_u32(b, n, &o, &ni) || (n - o) / 4 < ni) break;
        want = (int32_t *)malloc((ni + 1) * sizeof *want);
        for (i = 0; i < ni; i++) { uint32_t v; get_u32(b, n, &o, &v); want[i] = (int32_t)v; }
        is_sweep = nl > 6 && memcmp(name, "sweep/", 6) == 0;
        cap = tl + 1;
        got = (int32_t *)malloc(cap * sizeof *got);
        gotp = (int32_t *)malloc(cap * sizeof *gotp);
        r = lmu_encode(tok, (const char *)text, tl, mode == 1, got, cap, &ng);
        if (r != LMU_OK) ok = 0;
        if (mode != 2) {
            if (ng != ni) ok = 0;
            for (i = 0; ok && i < ni; i++)
                if (got[i] != want[i]) ok = 0;
        }
        /* the parallel encoder on the same text */
        r = lmu_encode_parallel(tok, (const char *)text, tl, mode == 1, gotp, cap, &ngp);
        if (r != LMU_OK || ngp != ng || memcmp(got, gotp, ng * sizeof *got) != 0) ok = 0;
        /* decode and streaming decode give back the bytes */
        dec = (char *)malloc(tl + 64);
        sdec = (char *)malloc(tl + 64 + lmu_tokenizer_max_token_bytes(tok));
        r = lmu_decode(tok, got, ng, dec, tl + 64, &nd);
        if (r != LMU_OK || nd != tl || memcmp(dec, text, tl) != 0) ok = 0;
        lmu_decoder_init(&d);
        for (i = 0; i < ng && ok; i++) {
            size_t w;
            if (lmu_decoder_push(&d, tok, got[i], sdec + ns, tl + 64 + lmu_tokenizer_max_token_bytes(tok) - ns, &w) != LMU_OK) ok = 0;
            ns += w;
        }
        if (ok) {
            size_t w;
            lmu_decoder_flush(&d, sdec + ns, 8, &w);
            ns += w;
            if (ns != tl || memcmp(sdec, text, tl) != 0) ok = 0;
        }
        if (ok) { ids_matched_cases++; ids_total += ni; }
        if (is_sweep && !ok) sweep_bad++;
        if (!ok && shown < 30) {
            size_t j = 0;
            shown++;
            if (mode != 2) {
                while (j < ng && j < ni && got[j] == want[j]) j++;
                printf("    %.*s: %lu ids, tiktoken %lu, first difference at id %lu (lmu %ld, tiktoken %ld)\n", (int)nl, name,
                       (unsigned long)ng, (unsigned long)ni, (unsigned long)j, j < ng ? (long)got[j] : -1L,
                       j < ni ? (long)want[j] : -1L);
            }
            show_bytes(text, tl);
        }
        LT_CHECK(ok, "%.*s (mode %u, %u bytes, %u ids)", (int)nl, name, mode, tl, ni);
        free(want); free(got); free(gotp); free(dec); free(sdec);
    }
    if (argc >= 6 && argv[4][0] != '-') check_classes(argv[4], argv[5]);
    LT_CHECK(c == count, "read all %u cases (stopped at %u: file damaged?)", count, c);
    printf("tiktoken: %lu of %u texts agree (all ids equal, round trips hold); %lu ids compared; %lu sweep texts differ\n",
           (unsigned long)ids_matched_cases, count, (unsigned long)ids_total, (unsigned long)sweep_bad);
    printf("tiktoken: tables are Unicode %s\n", lmu_tokenizer_unicode_version());
    lmu_tokenizer_free(tok);
    free(b);
    (void)k;
    return lt_end();
}
