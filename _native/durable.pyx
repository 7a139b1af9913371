# cython: boundscheck=False, wraparound=False
"""Durable file steps of a storage node's small writes, each in one call
that does not hold the GIL (pure twins: ``storage_node/_durable_twins.py``).

Why: a worker thread releases and re-takes the GIL around every ``os.*``
call, and on a loaded node each of those is a hand-off with the event loop
and the other workers (a futex wake, often a context switch). A small PUT
made ~45 such calls in its thread hop, at ~15 us each here (measured:
forty extra ``os.stat`` calls per PUT cost ~0.6 ms of node CPU). These
functions make the same system calls, in the same order, with the same
durability, but cross the GIL once.

- ``create_synced(path, parts)``: create ``path`` (``O_EXCL``), write
  ``parts``, ``fdatasync``, close. On failure the file is removed and
  ``OSError`` raised.
- ``commit_locked(lock_path, dest_dir, tmp_path, name)``: the shared
  ``flock`` on the partition lock file (its directory created durably if
  missing), the destination directory created durably (each new level
  fsynced into its parent) and locked exclusively, re-locked until the
  directory we hold is the one linked at ``dest_dir`` (a rehash may remove
  an empty one under us; ``DiskDrives.lock_dir``), then ``rename`` and an
  ``fsync`` of the directory, and its listing. Returns ``(lock_fd, dir_fd,
  names)`` with both locks held: ``close_fds`` releases them.
"""

from libc.errno cimport errno, ENOENT, EEXIST, EAGAIN, EINTR
from libc.stdlib cimport malloc, free, realloc
from libc.string cimport strlen, memcpy, strrchr
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "<fcntl.h>" nogil:
    int open(const char *path, int flags, ...)
    int O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_CLOEXEC, O_DIRECTORY

cdef extern from "<unistd.h>" nogil:
    ssize_t write(int fd, const void *buf, size_t n)
    int close(int fd)
    int fsync(int fd)
    int fdatasync(int fd)
    int unlink(const char *path)
    int dup(int fd)
    int usleep(unsigned int usec)

cdef extern from "<stdio.h>" nogil:
    int rename(const char *old, const char *new)

cdef extern from "<sys/file.h>" nogil:
    int flock(int fd, int op)
    int LOCK_SH, LOCK_EX

cdef extern from "<sys/stat.h>" nogil:
    ctypedef unsigned long dev_t
    ctypedef unsigned long ino_t
    ctypedef unsigned long nlink_t
    struct stat:
        dev_t st_dev
        ino_t st_ino
        nlink_t st_nlink
        unsigned int st_mode
    int c_stat "stat"(const char *path, stat *buf)
    int fstat(int fd, stat *buf)
    int mkdir(const char *path, unsigned int mode)
    int S_ISDIR(unsigned int mode)

cdef extern from "<dirent.h>" nogil:
    ctypedef struct DIR
    struct dirent:
        char d_name[256]
    DIR *fdopendir(int fd)
    dirent *readdir(DIR *d)
    int closedir(DIR *d)

import os

DEF MAX_DEPTH = 64
DEF RELOCK_TRIES = 100


cdef int _fsync_dir(const char *path) noexcept nogil:
    """fsync a directory; 0 or the errno."""
    cdef int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    cdef int err = 0
    if fd < 0:
        return errno
    if fsync(fd) != 0:
        err = errno
    close(fd)
    return err


cdef int _makedirs_durable(char *path) noexcept nogil:
    """mkdir -p ``path``, fsyncing each new level into its parent (as
    ``drive._makedirs_durable``); 0 or the errno. ``path`` is cut in place
    while walking and always restored."""
    cdef stat st
    cdef char *cuts[MAX_DEPTH]
    cdef int n = 0, i, err = 0
    cdef char *slash
    # Walk up to the nearest existing directory (anything else counts as
    # missing, as ``Path.is_dir`` has it: mkdir or open then says why).
    while not (c_stat(path, &st) == 0 and S_ISDIR(st.st_mode)):
        slash = strrchr(path, 47)  # '/'
        if slash == NULL or slash == path or n == MAX_DEPTH:
            break
        slash[0] = 0
        cuts[n] = slash
        n += 1
    # Create the missing levels, top down; one made by someone else
    # meanwhile (EEXIST) is theirs to fsync.
    i = n - 1
    while i >= 0:
        cuts[i][0] = 47
        if not err:
            if mkdir(path, 0o777) != 0:
                if errno != EEXIST:
                    err = errno
            else:
                cuts[i][0] = 0
                err = _fsync_dir(path)
                cuts[i][0] = 47
        i -= 1
    return err


def create_synced(path, parts):
    """Create ``path`` (O_EXCL, mode 0644), write ``parts``, fdatasync, close."""
    cdef bytes bpath = os.fsencode(path)
    cdef const char *cpath = bpath
    cdef list keep = [bytes(p) if not isinstance(p, bytes) else p for p in parts]
    cdef Py_ssize_t n = len(keep), i
    cdef const char **bufs = <const char **>malloc(max(n, 1) * sizeof(char *))
    cdef size_t *lens = <size_t *>malloc(max(n, 1) * sizeof(size_t))
    cdef int fd, err = 0
    cdef ssize_t w
    cdef size_t off
    if bufs == NULL or lens == NULL:
        free(bufs)
        free(lens)
        raise MemoryError()
    for i in range(n):
        bufs[i] = PyBytes_AS_STRING(keep[i])
        lens[i] = <size_t>PyBytes_GET_SIZE(keep[i])
    with nogil:
        fd = open(cpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0:
            err = errno
        else:
            for i in range(n):
                off = 0
                while off < lens[i]:
                    w = write(fd, bufs[i] + off, lens[i] - off)
                    if w < 0:
                        if errno == EINTR:
                            continue
                        err = errno
                        break
                    off += w
                if err:
                    break
            if not err and fdatasync(fd) != 0:
                err = errno
            if close(fd) != 0 and not err:
                err = errno
            if err:
                unlink(cpath)
    free(bufs)
    free(lens)
    if err:
        raise OSError(err, os.strerror(err), os.fsdecode(path))


def close_fds(int a, int b):
    """Close two descriptors (releasing their locks) in one call."""
    with nogil:
        close(a)
        close(b)


def commit_locked(lock_path, dest_dir, tmp_path, name):
    """See the module docstring. Returns ``(lock_fd, dir_fd, names)``."""
    cdef bytes block = os.fsencode(lock_path)
    cdef bytes bdest = os.fsencode(dest_dir)
    cdef bytes btmp = os.fsencode(tmp_path)
    cdef bytes bfinal = bdest + b"/" + os.fsencode(name)
    cdef size_t dlen = len(bdest), llen = len(block)
    cdef char *dest = <char *>malloc(dlen + 1)
    cdef char *lockp = <char *>malloc(llen + 1)
    cdef const char *ctmp = btmp
    cdef const char *cfinal = bfinal
    cdef int lock_fd = -1, dir_fd = -1, err = 0, tries, dfd, rc
    cdef char *slash
    cdef stat held, linked
    cdef DIR *d
    cdef dirent *ent
    cdef char *names = NULL
    cdef size_t used = 0, cap = 0, nlen
    cdef char *grown
    cdef int where = 0  # 0 lock, 1 dir, 2 rename, 3 list
    cdef size_t pos = 0
    if dest == NULL or lockp == NULL:
        free(dest)
        free(lockp)
        raise MemoryError()
    memcpy(dest, <const char *>bdest, dlen + 1)
    memcpy(lockp, <const char *>block, llen + 1)
    with nogil:
        # The partition lock (shared): writers that make files visible.
        lock_fd = open(lockp, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        if lock_fd < 0 and errno == ENOENT:
            slash = strrchr(lockp, 47)
            if slash != NULL:
                slash[0] = 0
                err = _makedirs_durable(lockp)
                slash[0] = 47
                if not err:
                    lock_fd = open(lockp, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        if not err and (lock_fd < 0 or flock(lock_fd, LOCK_SH) != 0):
            err = errno
        # The directory lock, on the directory linked at dest once held.
        if not err:
            where = 1
            err = EAGAIN
            for tries in range(RELOCK_TRIES):
                if tries >= 2:
                    # Lost the race to a rehash removing the directory
                    # again: give it time to finish (a C loop retries far
                    # faster than the Python remover moves).
                    usleep(100)
                rc = _makedirs_durable(dest)
                if rc:
                    if rc == ENOENT:
                        continue
                    err = rc
                    break
                dir_fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if dir_fd < 0:
                    if errno == ENOENT:
                        continue
                    err = errno
                    break
                if flock(dir_fd, LOCK_EX) != 0 or fstat(dir_fd, &held) != 0:
                    err = errno
                    close(dir_fd)
                    dir_fd = -1
                    break
                if c_stat(dest, &linked) != 0:
                    if errno == ENOENT:
                        close(dir_fd)
                        dir_fd = -1
                        continue
                    err = errno
                    close(dir_fd)
                    dir_fd = -1
                    break
                if held.st_nlink > 0 and held.st_dev == linked.st_dev and held.st_ino == linked.st_ino:
                    err = 0
                    break
                close(dir_fd)
                dir_fd = -1
        # Move the file in and make the entry durable.
        if not err:
            where = 2
            if rename(ctmp, cfinal) != 0 or fsync(dir_fd) != 0:
                err = errno
        # What the directory holds now (for settle), NUL-separated.
        if not err:
            where = 3
            dfd = dup(dir_fd)
            d = fdopendir(dfd) if dfd >= 0 else NULL
            if d == NULL:
                err = errno
                if dfd >= 0:
                    close(dfd)
            else:
                while True:
                    ent = readdir(d)
                    if ent == NULL:
                        break
                    nlen = strlen(ent.d_name)
                    if (nlen == 1 and ent.d_name[0] == 46) or (nlen == 2 and ent.d_name[0] == 46 and ent.d_name[1] == 46):
                        continue
                    if used + nlen + 1 > cap:
                        cap = (cap + nlen + 1) * 2
                        grown = <char *>realloc(names, cap)
                        if grown == NULL:
                            err = 12  # ENOMEM
                            break
                        names = grown
                    memcpy(names + used, ent.d_name, nlen + 1)
                    used += nlen + 1
                closedir(d)
        if err:
            if dir_fd >= 0:
                close(dir_fd)
            if lock_fd >= 0:
                close(lock_fd)
    free(dest)
    free(lockp)
    if err:
        free(names)
        path = tmp_path if where == 2 else (lock_path if where == 0 else dest_dir)
        raise OSError(err, os.strerror(err), os.fsdecode(path))
    out = []
    try:
        while pos < used:
            nlen = strlen(names + pos)
            out.append(os.fsdecode(names[pos:pos + nlen]))
            pos += nlen + 1
    finally:
        free(names)
    return lock_fd, dir_fd, out
