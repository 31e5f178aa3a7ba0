/* Engine errors: a thread-local message set by a failing call and read by its caller.
 *
 *   if (eng_conv2d(ctx, &conv, &x, &y) < 0)
 *       fprintf(stderr, "conv failed: %s\n", eng_errmsg());
 *
 * Every engine function that can fail returns 0 / -1 (or a pointer / NULL) and, on failure,
 * leaves a message here that names what was wrong (file, tensor, shape). The message stays
 * valid until the next failing engine call on the same thread.
 */
#ifndef SALIENT_ENGINE_ERROR_H
#define SALIENT_ENGINE_ERROR_H

/* Format a message into the calling thread's buffer; always returns -1 so callers can
 * write `return eng_error("...")`. */
int eng_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The calling thread's last message ("" if none). Borrowed. */
const char *eng_errmsg(void);

#endif
