# metafor side of benchmarks/run.py (run as: Rscript metafor_bench.R DATADIR).
# Reads the data sets run.py wrote to DATADIR (the same numbers ketameta uses, %.17g), times
# metafor on each workload with metafor's DEFAULT settings, and writes to DATADIR:
#   metafor_times.csv                workload, median seconds, repeats
#   metafor_<check>.csv              the numbers run.py compares with ketameta's.
# Timing uses metafor's defaults; the numbers compared with ketameta come from re-fits with
# control = list(threshold = 1e-12, maxiter = 1000) (metafor's default REML threshold 1e-5
# stops early). The default-settings numbers are written too (metafor_<check>_default.csv).
# Environment: KETAMETA_BENCH_QUICK=1 (fewer repeats), KETAMETA_BENCH_FULL=1 (also GOSH REML
# k = 16, about 6 minutes in metafor).
suppressPackageStartupMessages(library(metafor))
dir <- commandArgs(trailingOnly = TRUE)[1]
quick <- Sys.getenv("KETAMETA_BENCH_QUICK") == "1"
full <- Sys.getenv("KETAMETA_BENCH_FULL") == "1"
tight <- list(threshold = 1e-12, maxiter = 1000)

# median seconds per call over `reps` repeats of `n` calls (system.time has 1 ms resolution,
# so fast calls are timed in loops of n)
med <- function(f, reps, n = 1) {
  if (reps > 1) f()  # warm-up (single runs of seconds need none)
  median(sapply(seq_len(reps), function(i) system.time(for (j in seq_len(n)) f())[["elapsed"]])) / n
}
read <- function(name) read.csv(file.path(dir, paste0(name, ".csv")))
put <- function(name, ...) {
  cols <- list(...)
  body <- do.call(cbind, lapply(cols, function(x) sprintf("%.17g", x)))
  colnames(body) <- names(cols)
  write.csv(body, file.path(dir, paste0("metafor_", name, ".csv")), row.names = FALSE,
            quote = FALSE)
}
times <- data.frame(workload = character(), seconds = numeric(), repeats = integer())
time_it <- function(workload, f, reps, n = 1) {
  times[nrow(times) + 1, ] <<- list(workload, med(f, reps, n), reps)
}

reps <- if (quick) 3 else 11
for (k in c(20, 2000)) {
  d <- read(sprintf("single_k%d", k))
  for (m in c("DL", "REML")) {
    r <- if (k == 2000 && m == "REML") 1 else if (k == 2000) 3 else reps
    time_it(sprintf("%s fit, k=%d", m, k), function() rma(d$yi, d$vi, method = m), r,
            if (k == 20) 50 else 1)
    fit <- rma(d$yi, d$vi, method = m, control = tight)
    put(sprintf("single_%s_k%d", m, k), estimate = fit$b[1], tau2 = fit$tau2)
  }
}

b <- as.matrix(read("batch"))
k <- ncol(b) / 2
Y <- b[, 1:k]
V <- b[, (k + 1):(2 * k)]
tau2 <- numeric(nrow(Y))
time_it("1,000 REML fits, k=20", function() {
  for (i in seq_len(nrow(Y))) {
    tau2[i] <<- tryCatch(rma(Y[i, ], V[i, ], method = "REML")$tau2, error = function(e) NA)
  }
}, 1)
put("batch_default", tau2 = tau2)  # NA where Fisher scoring did not converge (an error)
for (i in seq_len(nrow(Y))) {
  tau2[i] <- tryCatch(rma(Y[i, ], V[i, ], method = "REML", control = tight)$tau2,
                      error = function(e) NA)
}
put("batch", tau2 = tau2)

d <- read("perm")
res <- rma(d$yi, d$vi, mods = ~ x, data = d, method = "REML")
time_it("permutation test, 1,000 perms, k=20",
        function() permutest(res, iter = 1000, progbar = FALSE), 1)
res <- rma(d$yi, d$vi, mods = ~ x, data = d, method = "REML", control = tight)
put("perm", coef = res$b[2], qm = res$QM)

for (k in c(12, 16)) {
  d <- read(sprintf("gosh_k%d", k))
  for (m in c("DL", "REML")) {
    if (k == 16 && m == "REML" && !full) next
    res <- rma(d$yi, d$vi, method = m)
    g <- NULL
    time_it(sprintf("GOSH all subsets, k=%d, %s", k, m),
            function() g <<- gosh(res, progbar = FALSE), 1)
    code <- as.vector(as.matrix(g$incl) %*% 2^(0:(k - 1)))
    o <- order(code)
    put(sprintf("gosh_%s_k%d_default", m, k), estimate = g$res$estimate[o], tau2 = g$res$tau2[o])
    if (m == "REML") {  # the check: gosh() refits with the model's control (tight)
      g <- gosh(rma(d$yi, d$vi, method = m, control = tight), progbar = FALSE)
      code <- as.vector(as.matrix(g$incl) %*% 2^(0:(k - 1)))
      o <- order(code)
    }
    put(sprintf("gosh_%s_k%d", m, k), estimate = g$res$estimate[o], tau2 = g$res$tau2[o])
  }
}

d <- read("loo_k200")
res <- rma(d$yi, d$vi, method = "REML")
l <- NULL
inf <- NULL
time_it("leave-one-out, k=200", function() l <<- leave1out(res), 1)
time_it("influence, k=200", function() inf <<- influence(res), 1)
put("loo_default", estimate = l$estimate, tau2 = l$tau2)
put("influence_default", tau2_del = inf$inf$tau2.del, cooks_d = inf$inf$cook.d)
res <- rma(d$yi, d$vi, method = "REML", control = tight)  # leave1out/influence reuse control
l <- leave1out(res)
inf <- influence(res)
put("loo", estimate = l$estimate, tau2 = l$tau2)
put("influence", tau2_del = inf$inf$tau2.del, cooks_d = inf$inf$cook.d)

d <- read("metareg")  # timed by metafor_server.R, in run.py's interleaved rounds
res <- rma(yi, vi, mods = ~ x1 + x2 + x3, data = d, method = "REML", control = tight)
put("metareg", coef = as.vector(res$b), tau2 = rep(res$tau2, length(res$b)))

# three-level rma.mv, k = 2,000 in 500 studies, metafor's defaults (dense, sparse = FALSE):
# minutes per fit, so timed once here (k = 200 and sparse = TRUE: metafor_server.R)
if (!quick && file.exists(file.path(dir, "mv_k2000.csv"))) {
  d <- read("mv_k2000")
  r <- NULL
  time_it("rma.mv 3-level REML, k=2000 (500 studies)", function() {
    r <<- rma.mv(yi, vi, random = ~ 1 | study/es, data = d, method = "REML")
  }, 1)
  put("mv_k2000", estimate = r$b[1], sigma2 = r$sigma2)
}

write.csv(times, file.path(dir, "metafor_times.csv"), row.names = FALSE)
