/* The log sink: levels, text and JSON lines, identical messages rate-limited with a count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "self/log.h"
#include "tap.h"

static char captured[16384];

/* Runs fn with stderr redirected to a file, then reads what it wrote. */
static const char *capture(void (*fn)(void))
{
    char path[] = "/tmp/remora-log-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, captured, sizeof captured - 1);
    captured[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return captured;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void levels(void)
{
    log_configure(RMR_LOG_WARN, 0, 0);
    log_write(RMR_LOG_ERROR, "input.dk", "cannot read '%s': %s", "/proc", "gone");
    log_write(RMR_LOG_INFO, "input.dk", "hidden at warn");
}

static void repeats(void)
{
    log_configure(RMR_LOG_INFO, 0, 200);
    for (int i = 0; i < 5; i++)
        log_write(RMR_LOG_WARN, "output.file", "queue full at %d bytes", 64);
    log_write(RMR_LOG_WARN, "output.other", "queue full at %d bytes", 64);
    struct timespec ts = {0, 250 * 1000000};
    nanosleep(&ts, NULL);
    log_write(RMR_LOG_WARN, "output.file", "queue full at %d bytes", 64);
}

static void json(void)
{
    log_configure(RMR_LOG_INFO, 1, 0);
    log_write(RMR_LOG_INFO, "agent", "a \"quoted\"\nline");
}

int main(void)
{
    const char *out = capture(levels);
    CONTAINS(out, " error input.dk: cannot read '/proc': gone\n",
             "text line: level, subject, text");
    OK(strstr(out, "hidden at warn") == NULL, "messages below the level are not written");

    out = capture(repeats);
    IS_INT(count(out, "output.file: queue full at 64 bytes"), 2,
           "an identical message is written once per window");
    CONTAINS(out, "(4 identical messages suppressed)", "then with the count of suppressed ones");
    IS_INT(count(out, "output.other: queue full"), 1, "another subject is not suppressed");

    out = capture(json);
    CONTAINS(out, "\"level\":\"info\",\"subject\":\"agent\",\"msg\":\"a \\\"quoted\\\"\\nline\"}",
             "JSON lines escape quotes and newlines");
    OK(out[0] == '{', "a JSON line starts with {");
    return tap_done();
}
