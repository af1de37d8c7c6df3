## (m) Generalized Q-statistic estimators of tau2 with user weights: method="GENQ" and
## method="GENQM" (median-unbiased), and rma(..., weights=) itself.
##
## metafor computes the distribution of the weighted Q statistic, Q_a = sum_j lambda_j chi2_1
## (lambda = the k - p largest eigenvalues of S P S, S = diag(sqrt(vi + tau2)),
## P = A - A X (X'AX)^-1 X'A, A = diag(weights)), with CompQuadForm::farebrother(). CompQuadForm is
## not installed on the machine that generated these cases (CRAN unreachable, no Debian package),
## so GENQM fits and confint(type="GENQ") stop there. For those values this script runs metafor's
## own algorithm (rma.uni's GENQM branch and confint.rma.uni's type="GENQ" branch, same boundary
## rules and uniroot() calls, tol = 1e-12) with Imhof's (1961) inversion formula for the
## distribution function in place of Farebrother's; see imhof_upper() below. Everything else
## (GENQ tau2 and its SE, model results, QE, I2, H2, weights, predict()) is metafor's output.
##   Rscript scripts/13_genq.R
source("scripts/common.R")

## P(Q > q) for Q = sum_j lambda_j chi2_1 (lambda_j > 0), Imhof (1961):
##   P(Q > q) = 1/2 + 1/pi int_0^Inf sin(theta(u)) / (u rho(u)) du,
##   theta(u) = 1/2 sum atan(lambda_j u) - q u / 2,  rho(u) = prod (1 + lambda_j^2 u^2)^(1/4).
## lambda and q are divided by max(lambda) first (the probability is scale invariant).
imhof_upper <- function(q, lambda) {
  lambda <- lambda[lambda > 0]
  s <- max(lambda)
  lambda <- lambda / s
  q <- q / s
  f <- function(u) {
    th <- 0.5 * colSums(atan(outer(lambda, u))) - q * u / 2
    rho <- exp(0.25 * colSums(log1p(outer(lambda^2, u^2))))
    sin(th) / (u * rho)
  }
  ## truncation at U: int_U^Inf |integrand| <= int_U^Inf du / (u rho(u)) (a smooth positive
  ## integral) <= 1e-15; U doubled from 1 until so. Pieces [0, 1], then about 20 periods
  ## (4 pi / q each, the integrand's oscillation) at a time up to U
  g <- function(u) 1 / (u * exp(0.25 * colSums(log1p(outer(lambda^2, u^2)))))
  U <- 1
  while (integrate(g, U, Inf, rel.tol = 1e-6)$value > 1e-15) U <- 2 * U
  width <- 20 * 4 * pi / max(q, 1e-8)  # about 20 periods
  edges <- unique(c(0, 1, if (U > 1) seq(1, U, by = width), U))
  integ <- function(rel) {
    total <- 0
    for (i in seq_len(length(edges) - 1)) {
      total <- total + integrate(f, edges[i], edges[i + 1], rel.tol = rel, abs.tol = 1e-14,
                                 subdivisions = 10000L)$value
    }
    0.5 + total / pi
  }
  out <- tryCatch(integ(1e-12), error = function(e) NULL)
  if (is.null(out)) {
    ## far in a tail (P within ~1e-5 of 0 or 1) integrate() can stop on round-off at
    ## rel.tol = 1e-12; such values only decide a boundary rule, never a root: retry looser
    ## and record how far from 0/1 the probability was
    out <- tryCatch(integ(1e-8), error = function(e) integ(1e-6))
    IMHOF_FALLBACK <<- max(IMHOF_FALLBACK, min(out, 1 - out))
  }
  out
}
IMHOF_FALLBACK <- 0

## metafor:::.GENQ.func with imhof_upper() in place of CompQuadForm::farebrother()
genq_func <- function(tau2val, P, vi, Q, level, k, p, getlower) {
  S <- diag(sqrt(vi + tau2val), nrow = k, ncol = k)
  lambda <- Re(eigen(S %*% P %*% S, symmetric = TRUE, only.values = TRUE)$values)
  Qq <- imhof_upper(Q, lambda[seq_len(k - p)])
  if (getlower) Qq - level else (1 - Qq) - level
}

genq_P <- function(w, k) {
  X <- cbind(rep(1, k))
  A <- diag(w, nrow = k, ncol = k)
  A - A %*% X %*% solve(crossprod(X, A) %*% X) %*% crossprod(X, A)
}

## rma.uni's GENQM branch (tau2.min = 0, tau2.max = 100, uniroot tol = 1e-12, maxiter = 1000)
genqm_tau2 <- function(yi, vi, w) {
  k <- length(yi); p <- 1
  P <- genq_P(w, k)
  Q <- c(crossprod(yi, P) %*% yi)
  if (genq_func(0, P, vi, Q, 0, k, p, TRUE) > 0.5) return(0)
  if (genq_func(100, P, vi, Q, 0, k, p, TRUE) < 0.5) stop("Value of 'tau2.max' too low.")
  uniroot(genq_func, interval = c(0, 100), tol = 1e-12, maxiter = 1000, P = P, vi = vi, Q = Q,
          level = 0.5, k = k, p = p, getlower = FALSE, extendInt = "no")$root
}

## confint.rma.uni's type="GENQ" branch (tau2.min = min(0, tau2), tau2.max = max(100, 10 tau2))
genq_confint <- function(res, w, level = 0.05) {
  yi <- c(res$yi); vi <- res$vi; k <- res$k; p <- res$p
  P <- genq_P(w, k)
  Q <- c(crossprod(yi, P) %*% yi)
  tmin <- min(0, res$tau2); tmax <- max(100, 10 * res$tau2)
  g <- function(t, lev, low) genq_func(t, P, vi, Q, lev, k, p, low)
  at_max <- g(tmax, 0, TRUE); at_min <- g(tmin, 0, TRUE)
  lb <- NA; ub <- NA; lb.sign <- ""; ub.sign <- ""
  root <- function(lev, low) uniroot(g, c(tmin, tmax), tol = 1e-12, maxiter = 1000,
                                     lev = lev, low = low)$root
  if (at_min > 1 - level / 2) {
    lb <- ub <- tmin; lb.sign <- ub.sign <- "<"
  } else if (at_max < 1 - level / 2) {
    ub <- tmax; ub.sign <- ">"
  } else {
    ub <- root(level / 2, FALSE)
  }
  if (at_max < level / 2) {
    lb <- ub <- tmax; lb.sign <- ub.sign <- ">"
  } else if (at_min > level / 2) {
    lb <- tmin
  } else {
    lb <- root(level / 2, TRUE)
  }
  vt <- res$vt
  list(rows = I(c("tau^2", "tau", "I^2(%)", "H^2")),
       estimate = I(c(res$tau2, sqrt(res$tau2), res$I2, res$H2)),
       ci.lb = I(c(lb, sqrt(lb), 100 * lb / (vt + lb), lb / vt + 1)),
       ci.ub = I(c(ub, sqrt(ub), 100 * ub / (vt + ub), ub / vt + 1)),
       lb.sign = lb.sign, ub.sign = ub.sign)
}

with_pred <- function(res) c(rma_summary(res), list(predict = pred_summary(predict(res))))

genq_case <- function(name, dat, wcols, dataset, calls0) {
  IMHOF_FALLBACK <<- 0
  out <- list()
  calls <- calls0
  for (wn in names(wcols)) {
    w <- dat[[wcols[[wn]]]]
    g <- rma(yi, vi, weights = w, data = dat, method = "GENQ")
    entry <- with_pred(g)
    entry$confint_metafor <- safe(stats::confint(g))
    entry$confint_imhof <- list(random = genq_confint(g, w))
    out[[paste0("GENQ_", wn)]] <- entry
    gk <- rma(yi, vi, weights = w, data = dat, method = "GENQ", test = "knha")
    out[[paste0("GENQ_knha_", wn)]] <- with_pred(gk)
    ga <- rma(yi, vi, weights = w, data = dat, method = "GENQ", test = "adhoc")
    out[[paste0("GENQ_adhoc_", wn)]] <- with_pred(ga)
    out[[paste0("GENQM_", wn, "_metafor")]] <- safe(rma_summary(rma(yi, vi, weights = w, data = dat,
                                                                     method = "GENQM")))
    t2 <- genqm_tau2(dat$yi, dat$vi, w)
    ## the rest of the GENQM fit: metafor with tau2 fixed at that root (method="GENQ", tau2=);
    ## se.tau2 is the GENQ/GENQM formula; fitstats dropped (a fixed tau2 counts no parameter)
    m <- rma(yi, vi, weights = w, data = dat, method = "GENQ", tau2 = t2)
    mm <- with_pred(m)
    mm$method <- "GENQM"
    mm$fitstats <- NULL
    mm$tau2_imhof <- t2
    mm$confint_imhof <- list(random = genq_confint(m, w))
    out[[paste0("GENQM_", wn)]] <- mm
    r <- rma(yi, vi, weights = w, data = dat, method = "REML")
    rr <- with_pred(r)
    rr$confint <- confint_summary(confint(r))
    out[[paste0("REML_", wn)]] <- rr
    calls <- c(calls,
      sprintf('w = %s: rma(yi, vi, weights=w, data=dat, method="GENQ") -> GENQ_%s (+ predict(), confint() -> confint_metafor; confint_imhof: see notes)', wcols[[wn]], wn),
      sprintf('  rma(yi, vi, weights=w, data=dat, method="GENQ", test="knha") -> GENQ_knha_%s, test="adhoc" -> GENQ_adhoc_%s', wn, wn),
      sprintf('  rma(yi, vi, weights=w, data=dat, method="GENQM") -> GENQM_%s_metafor (the error metafor gives here)', wn),
      sprintf('  GENQM_%s: tau2_imhof = genqm_tau2() (see notes); the rest from rma(yi, vi, weights=w, data=dat, method="GENQ", tau2=tau2_imhof), method relabelled GENQM, fitstats dropped', wn),
      sprintf('  rma(yi, vi, weights=w, data=dat, method="REML") + confint() -> REML_%s', wn))
  }
  w0 <- dat[[wcols[["n"]]]]
  w0[1] <- 0
  out$GENQ_n_first0 <- with_pred(rma(yi, vi, weights = w0, data = dat, method = "GENQ"))
  calls <- c(calls, sprintf('w0 = %s with w0[1] = 0: rma(yi, vi, weights=w0, data=dat, method="GENQ") -> GENQ_n_first0', wcols[["n"]]))
  out$DL <- with_pred(rma(yi, vi, data = dat, method = "DL"))
  out$HE <- with_pred(rma(yi, vi, data = dat, method = "HE"))
  calls <- c(calls, 'rma(yi, vi, data=dat, method="DL") -> DL, method="HE" -> HE (GENQ with weights 1/vi equals DL, with weights 1 equals HE)',
             'every rma()/confint() with control=list(tol=1e-12, threshold=1e-12, maxiter=1000) (scripts/common.R)')
  notes <- c(
    "CompQuadForm (needed by metafor for GENQM and for confint() of GENQ/GENQM fits: CompQuadForm::farebrother) is not installed here: CRAN is unreachable and Debian has no package. confint_metafor and GENQM_*_metafor hold metafor's errors.",
    "confint_imhof and GENQM_* are therefore R computations of metafor's algorithm, NOT metafor output: the GENQM branch of rma.uni() and the type='GENQ' branch of confint.rma.uni() (same boundary rules, tau2.min/tau2.max, uniroot(tol=1e-12, maxiter=1000)), with Imhof's (1961) inversion formula (integrate(rel.tol=1e-12, abs.tol=1e-14, subdivisions=10000) on [0, 1] and then pieces of about 20 oscillation periods (4 pi / Q) up to U, U where int_U^Inf du/(u rho(u)) <= 1e-15, a bound on the truncation error) in place of Farebrother's algorithm for P(sum lambda_j chi2_1 > Q). See scripts/13_genq.R.",
    if (IMHOF_FALLBACK == 0) "integrate() converged at rel.tol=1e-12 for every CDF value of this case (the looser retry in imhof_upper() was never used)." else
      sprintf("Where integrate() stopped on round-off at rel.tol=1e-12 (far in a tail, P near 0 or 1) the CDF was retried at rel.tol=1e-8 (then 1e-6); the largest min(P, 1-P) of those retries in this case was %.3g, so they only decided boundary rules (e.g. P(Q > Q_obs | tau2=0) vs 0.5), never a root.", IMHOF_FALLBACK),
    "metafor 3.8.1 on rma(yi, vi, weights=w, method=\"GENQM\") here: \"there is no package called 'CompQuadForm'\" (GENQM_*_metafor); on confint() of a GENQ fit: \"Please install the 'CompQuadForm' package when method='QGEN'.\" (confint_metafor).",
    "Cross-check: ketameta's own implementation (Python; Gauss-Legendre pieces plus QUADPACK's QAWF for the tail, itself checked against Ruben's series in tests/test_genq.py) reproduces these GENQM roots and CI bounds to about 1e-12 relative.",
    "Both algorithms are exact up to numerical error, so the values should agree with metafor + CompQuadForm to about 1e-8 (uniroot tol 1e-12; the CDF to about 1e-12).",
    "GENQ tau2 = max(0, (Q_a - tr(PV)) / tr(P)), truncated at tau2.min = 0 like the other estimators. Weights 0 are allowed (the study stays in k and gets weight 0%).")
  write_case(name, dat, out, dataset = dataset, calls = calls, notes = notes)
}

## BCG: log risk ratios; weights 1/vi, 1 and the total sample size
dat <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
dat$w_inv_vi <- 1 / dat$vi
dat$w_unit <- 1
dat$w_n <- with(dat, tpos + tneg + cpos + cneg)
genq_case("genq_bcg", as.data.frame(dat), list(inv_vi = "w_inv_vi", unit = "w_unit", n = "w_n"),
          "dat.bcg",
          c('dat <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)   (yi, vi in input.csv)',
            'w_inv_vi = 1/vi, w_unit = 1, w_n = tpos+tneg+cpos+cneg'))

## Normand (1999): standardized mean differences of length of stay; weights 1/vi, 1, n1i + n2i
## (not "MD": its tau2 is ~ 700, beyond GENQM's default tau2.max = 100)
dat <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
              data = dat.normand1999)
dat$w_inv_vi <- 1 / dat$vi
dat$w_unit <- 1
dat$w_n <- with(dat, n1i + n2i)
genq_case("genq_normand1999", as.data.frame(dat), list(inv_vi = "w_inv_vi", unit = "w_unit", n = "w_n"),
          "dat.normand1999",
          c('dat <- escalc("SMD", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=dat.normand1999)   (yi, vi in input.csv)',
            'w_inv_vi = 1/vi, w_unit = 1, w_n = n1i+n2i'))
cat("genq done\n")
