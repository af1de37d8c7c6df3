## Every tau2 estimator with moderators (rma.uni with mods), z and knha tests.
## Iterative estimators are run to exact roots (threshold/tol 1e-12), the precision
## ketameta converges to; metafor's defaults stop earlier.
source("common.R")

dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
inp <- data.frame(trial = dat$trial, author = dat$author, year = dat$year,
                  ablat = dat$ablat, yi = as.vector(dat$yi), vi = as.vector(dat$vi))
ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
methods <- c("EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM",
             "DLIT", "SJIT")
out <- list()
for (m in methods) {
  for (tst in c("z", "knha")) {
    r <- safe(rma(yi, vi, mods = ~ ablat + year, data = dat, method = m, test = tst,
                  control = ctrl))
    out[[paste0(m, "_", tst)]] <- if (!is.null(r$error)) r else rma_summary(r)
  }
}
write_case("metareg_methods_bcg", inp, out,
  dataset = "dat.bcg",
  calls = c('dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)',
            '<M>_<test>: rma(yi, vi, mods=~ablat+year, data=dat, method=M, test=test, control=list(threshold=1e-12, tol=1e-12, maxiter=10000))',
            'for M in EE, FE, DL, HE, HS, HSk, SJ, ML, REML, EB, PM, MP, PMM, DLIT, SJIT and test in "z", "knha"'),
  notes = c("control tightened so iterative estimators report exact roots (metafor's defaults stop at 1e-5 / 1e-4).",
            "SJ's starting value is var(yi)*(k-1)/k of the uncentred-by-moderators yi, as metafor."))
