// The kernel-copy floor of a bake: how fast copy_file_range(2) moves a file's bytes when the
// destination offset differs from the source's (as it must when a new header precedes the
// tensors), against the whole-file copy at equal offsets that `cp` does.
//
//   cc -O2 scripts/bench/copy_file_range_floor.c -o /tmp/cfr-floor
//   /tmp/cfr-floor MODEL.safetensors SRC_OFFSET DST_OFFSET CHUNK_BYTES [OUT]
//
// DST_OFFSET bytes of zeros are written first, then the source from SRC_OFFSET is copied in
// CHUNK_BYTES calls (64 MiB is what nopekit uses). Prints the copy's seconds; the output
// (default /tmp/cfr-floor.out) is removed. docs/benchmarks.md gives the numbers.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s FILE SRC_OFFSET DST_OFFSET CHUNK_BYTES [OUT]\n", argv[0]);
        return 2;
    }
    const char *out_path = argc > 5 ? argv[5] : "/tmp/cfr-floor.out";
    off_t src_offset = atoll(argv[2]), dst_offset = atoll(argv[3]);
    size_t chunk = (size_t)atoll(argv[4]);
    int in = open(argv[1], O_RDONLY);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) { perror("open"); return 1; }
    static char zeros[1 << 16];
    for (off_t left = dst_offset; left > 0;) {
        ssize_t n = write(out, zeros, left > (off_t)sizeof zeros ? sizeof zeros : (size_t)left);
        if (n <= 0) { perror("write"); return 1; }
        left -= n;
    }
    off_t end = lseek(in, 0, SEEK_END), position = src_offset;
    double t0 = now();
    for (off_t left = end - src_offset; left > 0;) {
        ssize_t n = copy_file_range(in, &position, out, NULL, (size_t)left < chunk ? (size_t)left : chunk, 0);
        if (n <= 0) { perror("copy_file_range"); return 1; }
        left -= n;
    }
    printf("src %lld dst %lld chunk %zu: %.3f s\n", (long long)src_offset, (long long)dst_offset, chunk, now() - t0);
    close(out);
    unlink(out_path);
    return 0;
}
