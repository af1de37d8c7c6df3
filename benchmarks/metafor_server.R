# metafor timing server for benchmarks/run.py (run as: Rscript metafor_server.R DATADIR).
# Keeps one R process with metafor loaded, so that run.py can time metafor in the same
# interleaved rounds as the Python implementations. Protocol, one line each way:
#   run.py -> R:  "<workload>\t<n>"   R -> run.py: the elapsed seconds of n calls
#   run.py -> R:  "quit"
# Workloads: the fast ones of metafor_bench.R (single fits, meta-regression), with metafor's
# default settings (the numbers compared with ketameta come from metafor_bench.R).
suppressPackageStartupMessages(library(metafor))
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
con <- file("stdin", open = "r")
cat("ready\n")
flush(stdout())
repeat {
  line <- readLines(con, n = 1)
  if (length(line) == 0 || line == "quit") break
  parts <- strsplit(line, "\t")[[1]]
  f <- fns[[parts[1]]]
  n <- as.integer(parts[2])
  start <- Sys.time()
  for (i in seq_len(n)) f()
  cat(sprintf("%.9g\n", as.numeric(difftime(Sys.time(), start, units = "secs"))))
  flush(stdout())
}
