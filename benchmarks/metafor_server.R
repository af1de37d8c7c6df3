# metafor timing server for benchmarks/run.py (run as: Rscript metafor_server.R DATADIR).
# Keeps one R process with metafor loaded, so that run.py can time metafor in the same
# interleaved rounds as the Python implementations. Protocol, one line each way:
#   run.py -> R:  "<workload>\t<n>"   R -> run.py: the elapsed seconds of n calls
#   run.py -> R:  "values\t<workload>"   R -> run.py: the numbers checked, space-separated
#   run.py -> R:  "quit"
# Workloads: the fast ones of metafor_bench.R (single fits, meta-regression), with metafor's
# default settings (the numbers compared with ketameta come from metafor_bench.R); the
# three-level rma.mv fits (dense, metafor's default, and sparse = TRUE) and clubSandwich's
# coef_test(vcov = "CR2"), whose numbers run.py checks ("values") before it times them.
suppressPackageStartupMessages(library(metafor))
has_cs <- suppressMessages(requireNamespace("clubSandwich", quietly = TRUE))
dir <- commandArgs(trailingOnly = TRUE)[1]
read <- function(name) read.csv(file.path(dir, paste0(name, ".csv")))
fns <- list()
for (k in c(20, 2000)) {
  local({
    d <- read(sprintf("single_k%d", k))
    for (m in c("DL", "REML")) {
      local({
        mm <- m
        fns[[sprintf("%s fit, k=%d", mm, k)]] <<- function() rma(d$yi, d$vi, method = mm)
      })
    }
  })
}
reg <- read("metareg")
fns[["metareg REML, 3 moderators, k=500"]] <- function() {
  rma(yi, vi, mods = ~ x1 + x2 + x3, data = reg, method = "REML")
}
vals <- list()
for (k in c(200, 2000)) {
  local({
    path <- file.path(dir, sprintf("mv_k%d.csv", k))
    if (!file.exists(path)) return()
    d <- read.csv(path)
    name <- sprintf("rma.mv 3-level REML, k=%d (%d studies)", k, k / 4)
    fit <- function(sparse) {
      rma.mv(yi, vi, random = ~ 1 | study/es, data = d, method = "REML", sparse = sparse)
    }
    fns[[name]] <<- function() fit(FALSE)
    fns[[paste0(name, "|sparse")]] <<- function() fit(TRUE)
    vals[[name]] <<- function() { r <- fit(FALSE); c(r$b, r$sigma2) }
    vals[[paste0(name, "|sparse")]] <<- function() { r <- fit(TRUE); c(r$b, r$sigma2) }
    if (k == 200 && has_cs) {
      res <- fit(FALSE)
      cr2 <- "robust CR2, 3-level k=200"
      fns[[cr2]] <<- function() clubSandwich::coef_test(res, vcov = "CR2", cluster = d$study)
      vals[[cr2]] <<- function() {
        ct <- clubSandwich::coef_test(res, vcov = "CR2", cluster = d$study)
        c(ct$SE, ct$df_Satt)
      }
    }
  })
}
con <- file("stdin", open = "r")
cat("ready\n")
flush(stdout())
repeat {
  line <- readLines(con, n = 1)
  if (length(line) == 0 || line == "quit") break
  parts <- strsplit(line, "\t")[[1]]
  if (parts[1] == "values") {
    f <- vals[[parts[2]]]
    cat(if (is.null(f)) "NA" else paste(sprintf("%.17g", f()), collapse = " "), "\n")
    flush(stdout())
    next
  }
  f <- fns[[parts[1]]]
  n <- as.integer(parts[2])
  start <- Sys.time()
  for (i in seq_len(n)) f()
  cat(sprintf("%.9g\n", as.numeric(difftime(Sys.time(), start, units = "secs"))))
  flush(stdout())
}
