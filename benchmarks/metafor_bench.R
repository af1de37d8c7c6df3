# metafor side of benchmarks/run.py: prints one JSON line {workload: median seconds}.
# Same data generator (different RNG): vi ~ U(0.01, 0.2); yi ~ N(0.3, 0.1 + vi).
suppressPackageStartupMessages(library(metafor))
quick <- Sys.getenv("KETAMETA_BENCH_QUICK") == "1"
med <- function(f, reps) { f(); median(sapply(seq_len(reps), function(i) system.time(f())[["elapsed"]])) }
gen <- function(k, seed) { set.seed(seed); vi <- runif(k, 0.01, 0.2); list(yi = rnorm(k, 0.3, sqrt(0.1 + vi)), vi = vi) }
out <- list()
reps <- if (quick) 3 else 20
for (k in c(20, 2000)) {
  d <- gen(k, 1)
  for (m in c("DL", "REML")) {
    r <- if (k == 2000 && m == "REML") 1 else reps
    out[[sprintf("%s fit, k=%d", m, k)]] <- med(function() rma(d$yi, d$vi, method = m), r)
  }
}
d <- lapply(1:1000, function(i) gen(20, 100 + i))
out[["1,000 REML fits, k=20"]] <- med(function() for (x in d) try(rma(x$yi, x$vi, method = "REML"), silent = TRUE), 1)
d <- gen(20, 2); x <- rnorm(20)
res <- rma(d$yi, d$vi, mods = ~ x, method = "REML")
out[["permutation test, 1,000 perms, k=20"]] <- med(function() permutest(res, iter = 1000, progbar = FALSE), 1)
for (k in c(12, 16)) {
  d <- gen(k, 4)
  for (m in c("DL", "REML")) {
    res <- rma(d$yi, d$vi, method = m)
    out[[sprintf("GOSH all subsets, k=%d, %s", k, m)]] <- med(function() gosh(res, progbar = FALSE), 1)
  }
}
d <- gen(200, 5); res <- rma(d$yi, d$vi, method = "REML")
out[["leave-one-out, k=200"]] <- med(function() leave1out(res), 1)
out[["influence, k=200"]] <- med(function() influence(res), 1)
cat(paste0("{", paste(sprintf('"%s": %.6g', names(out), unlist(out)), collapse = ", "), "}"), "\n")
