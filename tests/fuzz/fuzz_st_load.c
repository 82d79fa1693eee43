/* Fuzz target: lmu_st_load_memory (safetensors checkpoints).
   Properties: never crashes or overreads; a refused file leaves f zeroed and
   a message; an accepted file's tensors lie inside the data section, are
   found by name, read back, and survive a save -> load round trip with the
   same names, dtypes, shapes, bytes and metadata. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmu_st_file f, g;
    lmu_st_tensor *ts;
    void **bufs;
    unsigned char *out = NULL;
    size_t i, k, out_len = 0;
    char err[256];
    lmu_result r;
    memset(&f, 0, sizeof f);
    err[0] = 0;
    r = lmu_st_load_memory(&f, data, size, err, sizeof err);
    if (r != LMU_OK) {
        FZ_ASSERT(err[0] != 0);
        FZ_ASSERT(f.n_tensors == 0 && f.tensors == NULL && f.lmu__block == NULL);
        return 0;
    }
    FZ_ASSERT(f.header_len + 8 + f.data_len == size);
    ts = (lmu_st_tensor *)calloc(f.n_tensors + 1, sizeof *ts);
    bufs = (void **)calloc(f.n_tensors + 1, sizeof *bufs);
    FZ_ASSERT(ts && bufs);
    for (i = 0; i < f.n_tensors; i++) {
        const lmu_st_tensor *t = &f.tensors[i];
        size_t cnt = 1;
        FZ_ASSERT(t->offset <= f.data_len && t->nbytes <= f.data_len - t->offset);
        FZ_ASSERT(lmu_st_find(&f, t->name) == t);
        for (k = 0; k < (size_t)t->ndim; k++) cnt *= t->shape[k];
        FZ_ASSERT(cnt * lmu_st_dtype_size(t->dtype) == t->nbytes);
        bufs[i] = malloc(t->nbytes + 1);
        FZ_ASSERT(bufs[i]);
        r = lmu_st_read(&f, t->name, t->dtype, t->shape, t->ndim, bufs[i], err, sizeof err);
        FZ_ASSERT(r == LMU_OK);
        if (t->dtype == LMU_ST_F32 && t->nbytes) { /* the float path too */
            r = lmu_st_read_f32(&f, t->name, t->shape, t->ndim, (float *)bufs[i], err, sizeof err);
            FZ_ASSERT(r == LMU_OK);
        }
        ts[i] = *t;
        ts[i].data = bufs[i];
    }
    for (i = 0; i < f.n_meta; i++) {
        const char *v = lmu_st_meta_get(&f, f.meta[i].key);
        FZ_ASSERT(v && strcmp(v, f.meta[i].value) == 0);
    }
    r = lmu_st_save_memory(ts, f.n_tensors, f.meta, f.n_meta, &out, &out_len, err, sizeof err);
    FZ_ASSERT(r == LMU_OK);
    memset(&g, 0, sizeof g);
    r = lmu_st_load_memory(&g, out, out_len, err, sizeof err);
    if (r != LMU_OK) fprintf(stderr, "reload: %s\n", err);
    FZ_ASSERT(r == LMU_OK && g.n_tensors == f.n_tensors && g.n_meta == f.n_meta);
    for (i = 0; i < f.n_tensors; i++) {
        const lmu_st_tensor *t = lmu_st_find(&g, f.tensors[i].name);
        FZ_ASSERT(t && t->dtype == f.tensors[i].dtype && t->ndim == f.tensors[i].ndim);
        FZ_ASSERT(memcmp(t->shape, f.tensors[i].shape, sizeof t->shape[0] * (size_t)t->ndim) == 0);
        FZ_ASSERT(t->nbytes == f.tensors[i].nbytes);
        FZ_ASSERT(t->nbytes == 0 || memcmp(g.data + t->offset, f.data + f.tensors[i].offset, t->nbytes) == 0);
    }
    for (i = 0; i < f.n_meta; i++) {
        const char *v = lmu_st_meta_get(&g, f.meta[i].key);
        FZ_ASSERT(v && strcmp(v, f.meta[i].value) == 0);
    }
    lmu_st_close(&g);
    lmu_st_free_memory(out);
    for (i = 0; i < f.n_tensors; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    lmu_st_close(&f);
    return 0;
}
