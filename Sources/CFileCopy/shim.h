// copy_file_range(2): the kernel copies bytes between files without a trip through user
// memory (what `cp` uses). Glibc declares it only under _GNU_SOURCE, which would change the
// system headers Swift's Glibc module has already seen, so it is declared here by hand
// (glibc ≥ 2.27: ssize_t copy_file_range(int, off64_t *, int, off64_t *, size_t, unsigned)).
extern long copy_file_range(int in_fd, long long *in_offset, int out_fd, long long *out_offset,
                            unsigned long length, unsigned int flags);

static inline long nopekit_copy_file_range(int in_fd, long long *in_offset, int out_fd, unsigned long length) {
    return copy_file_range(in_fd, in_offset, out_fd, 0, length, 0);
}

// sync_file_range(2) with SYNC_FILE_RANGE_WRITE (2): start writing a range back to disk now,
// without waiting, so the fdatasync before publishing an output has little left to do.
extern int sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags);

static inline int nopekit_start_writeback(int fd, long long offset, long long nbytes) {
    return sync_file_range(fd, offset, nbytes, 2);
}

// renameat2(2) with RENAME_EXCHANGE (2): swaps two paths atomically (Linux ≥ 3.15, ext4, xfs,
// btrfs, tmpfs), so a folder can replace a non-empty folder with no moment where neither is
// in place. Declared by hand for the same reason as copy_file_range.
extern int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

static inline int nopekit_exchange(const char *a, const char *b) {
    return renameat2(-100 /* AT_FDCWD */, a, -100, b, 2 /* RENAME_EXCHANGE */);
}
