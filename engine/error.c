/* error.c: the thread-local last-error message of the engine. */
#include "engine/error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char eng_err_buf[1024];

int eng_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(eng_err_buf, sizeof eng_err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

const char *eng_errmsg(void)
{
    return eng_err_buf;
}
