/* Prometheus text scrapes in the metrics tests (test_e2e_metrics, test_e2e_metrics_vm): a
 * series' value, and Debian's `promtool check metrics` over a scrape. */
#ifndef LEL_E2E_PROMTEXT_H
#define LEL_E2E_PROMTEXT_H

/** The value of the series `series` (name and labels exactly as rendered) in `text`, or -1. */
double prom_value(const char *text, const char *series);
/** 1 when `prog` is on PATH. */
int prom_have(const char *prog);
/** Writes `text` to <dir>/scrape.txt and runs `promtool check metrics` on it: its exit status
 * (0: it parses and follows the naming conventions), or -1 when the file cannot be written. */
int prom_lint(const char *dir, const char *text);

#endif
