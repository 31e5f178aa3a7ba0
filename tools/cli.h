/* cli: what the command-line tools share: fatal errors and option parsing with the tool's name.
 *
 *   const char *const cli_prog = "salient-run";     // each tool defines its name once
 *   cli_die("cannot read %s", path);                  // "salient-run: cannot read x", exit 1
 *   cli_usage_error("--batch needs a number");       // the same plus a --help hint, exit 2
 *   int n = (int)cli_parse_int("--batch", optarg, 1, 4096);
 */
#ifndef SALIENT_TOOLS_CLI_H
#define SALIENT_TOOLS_CLI_H

extern const char *const cli_prog;

void cli_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* An integer in lo..hi, or a usage error naming the option. */
long long cli_parse_int(const char *opt, const char *s, long long lo, long long hi);

#endif
