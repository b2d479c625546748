/* LD_PRELOAD shim for tests/test_durability.py: record what a process writes to one SQLite
 * database and its WAL, and when it syncs them, so the test can rebuild the files a power cut
 * would leave (only what an fsync or fdatasync covered); and make those syncs fail with EIO on
 * request, as a failing disk would.
 *
 *   IOTRACE_DB=/abs/path.db   the database; it and PATH-wal / PATH-journal are traced
 *   IOTRACE_LOG=/abs/log      records appended here (format below)
 *   IOTRACE_EIO_FLAG=/abs/f   while this file exists, fsync/fdatasync of a traced file fail (EIO)
 *
 * Record: u8 op, u8[3] 0, i32 file, i64 monotonic ns, i64 a, i64 b, then b bytes for 'W' and 'O'.
 *   'O' open      file = new id, b = length of the path that follows
 *   'W' write     a = offset, b = length of the data that follows (what the call really wrote)
 *   'T' truncate  a = new size
 *   'B' sync begins, a = sequence; 'E' it ended, a = sequence, b = 0 or errno
 * A write is logged after it returns and a sync's begin before it starts, so a write racing a
 * sync on another thread is counted as not covered: the rebuild can only err towards losing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fd_file[MAX_FD]; /* 0: not traced, else file id + 1 */
static int log_fd = -1;
static int next_file = 0;
static int64_t next_seq = 0;
static const char *db_path, *eio_flag;
static size_t db_len;

struct rec {
    uint8_t op, pad[3];
    int32_t file;
    int64_t t, a, b;
};

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);

__attribute__((constructor)) static void init(void) {
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_close = dlsym(RTLD_NEXT, "close");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    db_path = getenv("IOTRACE_DB");
    eio_flag = getenv("IOTRACE_EIO_FLAG");
    db_len = db_path ? strlen(db_path) : 0;
    const char *log_path = getenv("IOTRACE_LOG");
    if (log_path)
        log_fd = real_open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

static int64_t now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void emit(uint8_t op, int file, int64_t a, int64_t b, const void *data, size_t len) {
    /* with `lock` held */
    if (log_fd < 0)
        return;
    struct rec r = {op, {0, 0, 0}, file, now(), a, b};
    real_write(log_fd, &r, sizeof r);
    const char *p = data;
    while (len > 0) {
        ssize_t n = real_write(log_fd, p, len);
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
}

static int traced_name(const char *path) {
    if (!db_path || !path || strncmp(path, db_path, db_len) != 0)
        return 0;
    const char *rest = path + db_len;
    return *rest == 0 || strcmp(rest, "-wal") == 0 || strcmp(rest, "-journal") == 0;
}

static int opened(int fd, const char *path, int flags) {
    if (fd < 0 || fd >= MAX_FD || !traced_name(path))
        return fd;
    pthread_mutex_lock(&lock);
    int file = next_file++;
    fd_file[fd] = file + 1;
    emit('O', file, 0, (int64_t)strlen(path), path, strlen(path));
    if (flags & O_TRUNC)
        emit('T', file, 0, 0, NULL, 0);
    pthread_mutex_unlock(&lock);
    return fd;
}

static int file_of(int fd) { return fd >= 0 && fd < MAX_FD ? fd_file[fd] - 1 : -1; }

#define OPEN_MODE                                                                                     \
    mode_t mode = 0;                                                                                  \
    if (flags & (O_CREAT | O_TMPFILE)) {                                                              \
        va_list ap;                                                                                   \
        va_start(ap, flags);                                                                          \
        mode = va_arg(ap, mode_t);                                                                    \
        va_end(ap);                                                                                   \
    }

int open(const char *path, int flags, ...) {
    OPEN_MODE
    return opened(real_open(path, flags, mode), path, flags);
}
int open64(const char *path, int flags, ...) {
    OPEN_MODE
    return opened(real_open64(path, flags, mode), path, flags);
}
int openat(int dir, const char *path, int flags, ...) {
    OPEN_MODE
    return opened(real_openat(dir, path, flags, mode), path, flags);
}
int openat64(int dir, const char *path, int flags, ...) {
    OPEN_MODE
    return opened(real_openat64(dir, path, flags, mode), path, flags);
}

int close(int fd) {
    if (fd >= 0 && fd < MAX_FD && fd_file[fd]) {
        pthread_mutex_lock(&lock);
        fd_file[fd] = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

static void wrote(int fd, const void *buf, ssize_t n, off_t offset) {
    int file = file_of(fd);
    if (file < 0 || n <= 0)
        return;
    pthread_mutex_lock(&lock);
    emit('W', file, offset, n, buf, (size_t)n);
    pthread_mutex_unlock(&lock);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) {
    ssize_t done = real_pwrite64(fd, buf, n, offset);
    wrote(fd, buf, done, offset);
    return done;
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) {
    ssize_t done = real_pwrite(fd, buf, n, offset);
    wrote(fd, buf, done, offset);
    return done;
}
ssize_t write(int fd, const void *buf, size_t n) {
    if (file_of(fd) < 0)
        return real_write(fd, buf, n);
    off_t offset = lseek(fd, 0, SEEK_CUR);
    ssize_t done = real_write(fd, buf, n);
    wrote(fd, buf, done, offset);
    return done;
}

static int truncated(int fd, off_t size, int result) {
    int file = file_of(fd);
    if (file >= 0 && result == 0) {
        pthread_mutex_lock(&lock);
        emit('T', file, size, 0, NULL, 0);
        pthread_mutex_unlock(&lock);
    }
    return result;
}
int ftruncate(int fd, off_t size) { return truncated(fd, size, real_ftruncate(fd, size)); }
int ftruncate64(int fd, off_t size) { return truncated(fd, size, real_ftruncate64(fd, size)); }

static int synced(int fd, int (*real)(int)) {
    int file = file_of(fd);
    if (file < 0)
        return real(fd);
    pthread_mutex_lock(&lock);
    int64_t seq = next_seq++;
    emit('B', file, seq, 0, NULL, 0);
    pthread_mutex_unlock(&lock);
    int result, error = 0;
    if (eio_flag && access(eio_flag, F_OK) == 0) {
        result = -1;
        error = EIO;
    } else {
        result = real(fd);
        error = result == 0 ? 0 : errno;
    }
    pthread_mutex_lock(&lock);
    emit('E', file, seq, error, NULL, 0);
    pthread_mutex_unlock(&lock);
    if (result != 0)
        errno = error;
    return result;
}
int fsync(int fd) { return synced(fd, real_fsync); }
int fdatasync(int fd) { return synced(fd, real_fdatasync); }
