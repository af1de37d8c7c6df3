## (k) publication-bias / selection models and a few edge cases:
##     selmodel, hc, tes, regtest on 2x2 data, test="t"/"knha"/"adhoc", rma.mh with no/all events,
##     SMDH and DLIT (behaviour specific to metafor 3.8.1)
## Run from the folder where scripts/common.R resolves; writes cases/<name>/.
## Optional argument: a comma-separated list of parts to run (sel = sel_bcg + sel_hackshaw + sel_baskerville + sel_less, hc, tes, reg, tadhoc, mh, smdh).
## The selection models are slow (numerical integration at rel.tol 1e-10): run the sel_* parts in parallel if needed.
source("scripts/common.R")

args <- commandArgs(trailingOnly = TRUE)
PARTS <- if (length(args)) strsplit(args[1], ",")[[1]] else c("sel", "hc", "tes", "reg", "tadhoc", "mh", "smdh")

## capture warnings of an expression; errors -> list(error=...)
with_warn <- function(expr) {
  w <- character(0)
  val <- tryCatch(withCallingHandlers(expr, warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") }),
                  error = function(e) structure(list(error = conditionMessage(e)), class = "refused"))
  list(value = val, warnings = unique(w))
}
refused <- function(x) inherits(x, "refused")

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_inp <- data.frame(trial = bcg$trial, author = bcg$author, year = bcg$year,
                      tpos = bcg$tpos, tneg = bcg$tneg, cpos = bcg$cpos, cneg = bcg$cneg,
                      ablat = bcg$ablat, alloc = bcg$alloc, yi = as.vector(bcg$yi), vi = as.vector(bcg$vi))
BCG_ESC <- 'dat <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)   (yi, vi in input.csv)'

## ---------------------------------------------------------------------------------------------
## 1. selection models
## ---------------------------------------------------------------------------------------------
SELCTRL <- list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-12, maxit = 10000)
INTCTRL <- list(rel.tol = 1e-10, subdivisions = 1000)
SEL_MAXREFIT <- as.integer(Sys.getenv("SEL_MAXREFIT", "6"))  # refits cap (env var SEL_MAXREFIT)

## fit, then refit from the solution (beta.init, tau2.init, delta.init) until the parameters stop moving
fit_sel <- function(res, ...) {
  dots <- list(...)
  ctrl0 <- SELCTRL
  if (!identical(dots$type, "stepfun")) ctrl0$intCtrl <- INTCTRL
  first <- with_warn(do.call(selmodel, c(list(res), dots, list(control = ctrl0))))
  if (refused(first$value)) return(list(fit = first$value, warnings = first$warnings, refits = 0, last_move = NA))
  s <- first$value; warns <- first$warnings
  refits <- 0; move <- NA
  for (it in seq_len(SEL_MAXREFIT)) {
    par0 <- c(s$beta, s$tau2, s$delta)
    est <- is.na(s$delta.fix) | !s$delta.fix
    di <- pmin(pmax(s$delta, s$delta.min + 1e-10), s$delta.max - 1e-10)
    ctrl <- c(ctrl0, list(beta.init = c(s$beta), tau2.init = max(s$tau2, 1e-8), delta.init = di))
    nxt <- with_warn(do.call(selmodel, c(list(res), dots, list(control = ctrl))))
    if (refused(nxt$value)) break
    s2 <- nxt$value
    if (s2$ll < s$ll - 1e-12) break
    refits <- refits + 1
    move <- max(abs(c(s2$beta, s2$tau2, s2$delta) - par0))
    gain <- s2$ll - s$ll
    s <- s2; warns <- nxt$warnings
    if (move < 1e-9) break
    if (gain < 1e-10 && refits >= 2) break  # log-likelihood flat (parameter creeping towards a bound)
  }
  list(fit = s, warnings = warns, refits = refits, last_move = move)
}

sel_summary <- function(f) {
  s <- f$fit
  if (refused(s)) return(unclass(s))
  free <- if (is.null(s$delta.fix)) rep(TRUE, length(s$delta)) else !s$delta.fix
  tol_lo <- .Machine$double.eps^0.25; tol_hi <- 100 * .Machine$double.eps^0.25
  at_lower <- free & (s$delta <= s$delta.min + tol_lo)
  at_upper <- free & (s$delta >= s$delta.max - tol_hi)
  list(type = s$type, method_of_input_fit = s$method,
       steps = if (!is.null(s$steps) && !all(is.na(s$steps))) I(s$steps) else NULL,
       ptable_k = if (is.data.frame(s$ptable)) I(s$ptable$k) else NULL,
       beta = I(unname(as.vector(s$beta))), se = I(unname(as.vector(s$se))),
       zval = I(unname(as.vector(s$zval))), pval = I(unname(as.vector(s$pval))),
       ci.lb = I(unname(as.vector(s$ci.lb))), ci.ub = I(unname(as.vector(s$ci.ub))),
       tau2 = s$tau2, se.tau2 = s$se.tau2,
       delta = I(unname(s$delta)), se.delta = I(unname(s$se.delta)),
       zval.delta = I(unname(s$zval.delta)), pval.delta = I(unname(s$pval.delta)),
       ci.lb.delta = I(unname(s$ci.lb.delta)), ci.ub.delta = I(unname(s$ci.ub.delta)),
       delta.min = I(unname(s$delta.min)), delta.max = I(unname(s$delta.max)),
       delta_at_lower_bound = I(unname(at_lower)), delta_at_upper_bound = I(unname(at_upper)),
       any_delta_at_bound = any(at_lower | at_upper),
       LRT = s$LRT, LRTdf = s$LRTdf, LRTp = s$LRTp,
       logLik = s$ll, logLik_null = s$ll0,
       LRT.tau2 = s$LRT.tau2, LRTp.tau2 = s$LRTp.tau2,
       pval.min = s$pval.min,
       refits = f$refits, last_refit_change = f$last_move,
       warnings = I(f$warnings))
}

SEL_SPECS <- list(
  stepfun_3psm = list(type = "stepfun", steps = 0.025),
  stepfun_4psm = list(type = "stepfun", steps = c(0.025, 0.5)),
  beta = list(type = "beta"),
  halfnorm = list(type = "halfnorm"),
  negexp = list(type = "negexp"),
  logistic = list(type = "logistic"),
  power = list(type = "power"))

## env var SEL_SPECS (comma-separated names) restricts the specs, e.g. SEL_SPECS=stepfun_3psm,stepfun_4psm
if (nzchar(Sys.getenv("SEL_SPECS"))) SEL_SPECS <- SEL_SPECS[strsplit(Sys.getenv("SEL_SPECS"), ",")[[1]]]

sel_case <- function(name, dat, inp, dataset, esc_call, specs, extra = NULL, notes = character(0)) {
  out <- list(control = list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-12, maxit = 10000,
                             intCtrl_rel.tol_nonstepfun = 1e-10, intCtrl_subdivisions_nonstepfun = 1000,
                             max_refits = SEL_MAXREFIT))
  for (m in c("ML", "REML")) {
    res <- rma(yi, vi, data = dat, method = m)
    out[[paste0("rma_", m)]] <- list(b = c(res$beta), se = res$se, tau2 = res$tau2, logLik_ML = c(logLik(res, REML = FALSE)))
    for (nm in names(specs)) {
      cat(name, m, nm, "\n")
      out[[paste0(m, "_", nm)]] <- sel_summary(do.call(fit_sel, c(list(res), specs[[nm]])))
    }
  }
  if (!is.null(extra)) out <- c(out, extra(dat))
  calls <- c(esc_call,
    'res <- rma(yi, vi, data=dat, method=M) for M in ML, REML (rma with tol=threshold=1e-12) -> rma_<M>',
    'selmodel(res, <spec>, control=list(optimizer="optim", optmethod="BFGS", reltol=1e-12, maxit=10000)) -> <M>_<spec>; for every type except "stepfun" also intCtrl=list(rel.tol=1e-10, subdivisions=1000)',
    'then refit from the solution (beta.init, tau2.init, delta.init = previous estimates, delta.init pulled 1e-10 inside [delta.min, delta.max]) up to 6 times until max |change| < 1e-9, or (after 2 refits) the log-likelihood gains < 1e-10 (refits, last_refit_change record this)',
    paste0('specs: ', paste(sprintf('%s = %s', names(specs), vapply(specs, function(s) paste(deparse(s), collapse = ""), "")), collapse = '; ')),
    'exported: beta, se, zval, pval, ci.lb, ci.ub, tau2, se.tau2, delta, se.delta, zval/pval.delta, ci.lb/ub.delta, delta.min/max, LRT, LRTdf, LRTp (LRT for the selection parameters), logLik (= res$ll), logLik_null (= res$ll0), LRT.tau2, LRTp.tau2, ptable_k (studies per p-value interval, stepfun)',
    'delta_at_lower_bound / delta_at_upper_bound: metafor\'s own check (delta <= delta.min + eps^0.25, delta >= delta.max - 100*eps^0.25) that triggers its "(almost) equal to their lower or upper bound" warning; warnings = warnings selmodel gave on the last fit')
  notes <- c('selmodel() always maximises the (full ML) selection-model likelihood: fits started from a REML rma() give the same selection-model estimates as from ML; only logLik_null (ML log-likelihood at the REML estimates, logLik(res, REML=FALSE)) and hence LRT can differ.',
             'delta values for stepfun: delta[1] is fixed at 1 (interval 0 < p <= steps[1]); se.delta etc. are NA for it. alternative="greater" (the default): one-sided p-values for H1: theta > 0.',
             'Parameters at a bound: metafor maps delta onto [delta.min, delta.max] with a logistic transform, so an estimate that wants to go past the bound creeps towards it and refits keep moving (last_refit_change > 1e-9); at such a solution se.delta and the CI are not meaningful (Hessian at the edge).',
             notes)
  write_case(name, inp, out, dataset = dataset, calls = calls, notes = notes)
}

if ("sel" %in% PARTS) PARTS <- c(PARTS, "sel_bcg", "sel_hackshaw", "sel_baskerville", "sel_less")
if ("sel_less" %in% PARTS) {
  ## one-sided p-values for H1: theta < 0 (benefit = negative effects, as in the review's report)
  less <- lapply(SEL_SPECS[c("stepfun_3psm", "stepfun_4psm", "beta", "halfnorm", "negexp")],
                 function(s) c(s, list(alternative = "less")))
  sel_case("selmodel_bcg_less", bcg, bcg_inp, "dat.bcg", BCG_ESC, less,
    notes = 'alternative="less" in every spec: one-sided p-values for H1: theta < 0 (BCG log RR: vaccination lowers risk, so a selection on "significant benefit" acts on these p-values). Here 8 p-values lie below 0.025 and 5 above, so the 3PSM is identified (compare selmodel_bcg, alternative="greater", where the interval below 0.025 is empty).')
}
if ("sel_bcg" %in% PARTS) {
  bcg_extra <- function(dat) {
    res <- rma(yi, vi, data = dat, method = "ML")
    ## 3PSM with delta fixed exactly at its bound (delta.max = 100)
    fx <- with_warn(selmodel(res, type = "stepfun", steps = 0.025, delta = c(1, 100), control = SELCTRL))
    f <- list(fit = fx$value, warnings = fx$warnings, refits = 0, last_move = NA)
    list(ML_stepfun_3psm_delta_fixed_at_bound = sel_summary(f))
  }
  sel_case("selmodel_bcg", bcg, bcg_inp, "dat.bcg", BCG_ESC, SEL_SPECS, extra = bcg_extra,
    notes = c('BCG: all 13 one-sided (greater) p-values exceed 0.025 (ptable_k = 0, 13), so the 3PSM likelihood increases monotonically in delta[2]; the estimate runs to the upper bound delta.max = 100 (the optimiser stops near 99.95, just inside metafor\'s own bound check delta >= 100 - 100*eps^0.25, so delta_at_upper_bound is false and metafor gives no warning). ML_stepfun_3psm_delta_fixed_at_bound is selmodel(res, type="stepfun", steps=0.025, delta=c(1,100)) (ML res): beta and tau2 with delta held exactly at the bound.',
              'negexp and logistic run to delta -> 0 (= no selection; LRT = 0 truncated by max(0, .)).'))

}
if ("sel_hackshaw" %in% PARTS) {
  hk <- dat.hackshaw1998
  sel_case("selmodel_hackshaw1998", hk, hk[, c("study", "author", "year", "country", "design", "cases", "or", "or.lb", "or.ub", "yi", "vi")],
    "dat.hackshaw1998", 'dat <- dat.hackshaw1998  (yi = log OR, vi as supplied)', SEL_SPECS,
    notes = 'Hackshaw: the 3PSM (steps=0.025) is interior (7 of 37 p-values <= 0.025).')

}
if ("sel_baskerville" %in% PARTS) {
  bk <- dat.baskerville2012
  bk$yi <- bk$smd; bk$vi <- bk$se^2
  sel_case("selmodel_baskerville2012", bk, bk[, c("author", "year", "smd", "se", "yi", "vi")],
    "dat.baskerville2012", 'dat <- dat.baskerville2012; dat$yi <- dat$smd; dat$vi <- dat$se^2   (as in ?selmodel: rma(smd, se^2, data=dat, method="ML"))',
    SEL_SPECS[c("stepfun_3psm", "stepfun_4psm")],
    notes = 'Baskerville: the step-function models from metafor\'s ?selmodel example.')
}

## ---------------------------------------------------------------------------------------------
## 2. Henmi-Copas
## ---------------------------------------------------------------------------------------------
hc_summary <- function(h) list(beta = h$beta, se = h$se, ci.lb = h$ci.lb, ci.ub = h$ci.ub, tau2 = h$tau2,
                               beta.rma = c(h$beta.rma), se.rma = h$se.rma, ci.lb.rma = h$ci.lb.rma, ci.ub.rma = h$ci.ub.rma,
                               method = h$method)
if ("hc" %in% PARTS) {
  res <- rma(yi, vi, data = bcg, method = "DL")
  out <- list(hc_default = hc_summary(hc(res)),
              `hc_tol_1e-12` = hc_summary(hc(res, control = list(tol = 1e-12))))
  hk <- dat.hackshaw1998
  resh <- rma(yi, vi, data = hk, method = "DL")
  out$hackshaw1998_hc_default <- hc_summary(hc(resh))
  out[["hackshaw1998_hc_tol_1e-12"]] <- hc_summary(hc(resh, control = list(tol = 1e-12)))
  write_case("hc_bcg", bcg_inp, out, dataset = "dat.bcg",
    calls = c(BCG_ESC,
              'res <- rma(yi, vi, data=dat, method="DL")',
              'hc(res) -> hc_default  (uniroot tol = .Machine$double.eps^0.25, metafor\'s default)',
              'hc(res, control=list(tol=1e-12)) -> hc_tol_1e-12',
              'also for dat.hackshaw1998 (yi, vi as supplied; not in input.csv): hackshaw1998_hc_default, hackshaw1998_hc_tol_1e-12',
              'exported: beta, se, ci.lb, ci.ub (Henmi-Copas), tau2 (DL), beta.rma, se.rma, ci.lb.rma, ci.ub.rma (the DL random-effects fit)'),
    notes = 'Only the CI (the uniroot for the t-quantile-like factor) depends on tol; beta and se are closed-form.')
}

## ---------------------------------------------------------------------------------------------
## 3. test of excess significance
## ---------------------------------------------------------------------------------------------
tes_summary <- function(t) list(k = t$k, O = t$O, E = t$E, OEratio = t$OEratio, test = t$test, X2 = t$X2,
                                pval = t$pval, theta = t$theta, theta.lim = t$theta.lim,
                                tes.alternative = t$tes.alternative, tes.alpha = t$tes.alpha,
                                power = I(t$power), sig = I(t$sig))
tes_block <- function(dat) {
  out <- list()
  for (m in c("REML", "DL", "FE")) {
    res <- rma(yi, vi, data = dat, method = m)
    out[[paste0(m, "_default")]] <- tes_summary(tes(res, progbar = FALSE))
    exact_ok <- res$k <= 20  # the exact test enumerates all 2^k outcome sets
    for (tt in c("exact", "binom", "chi2")) {
      if (tt == "exact" && !exact_ok) next
      out[[paste0(m, "_", tt)]] <- tes_summary(tes(res, test = tt, progbar = FALSE))
    }
    if (exact_ok) out[[paste0(m, "_exact_rel.tol_1e-10")]] <- tes_summary(tes(res, test = "exact", rel.tol = 1e-10, progbar = FALSE))
  }
  res <- rma(yi, vi, data = dat, method = "REML")
  out$REML_tes.alternative_two.sided <- tes_summary(tes(res, tes.alternative = "two.sided", progbar = FALSE))
  out$REML_tes.alternative_less <- tes_summary(tes(res, tes.alternative = "less", progbar = FALSE))
  out$REML_chi2_correct_TRUE <- tes_summary(tes(res, test = "chi2", correct = TRUE, progbar = FALSE))
  out$default_vector_input <- tes_summary(tes(dat$yi, dat$vi, progbar = FALSE))
  out
}
if ("tes" %in% PARTS) {
  out <- tes_block(bcg)
  hk <- dat.hackshaw1998
  out$hackshaw1998 <- tes_block(hk)
  write_case("tes_bcg", bcg_inp, out, dataset = "dat.bcg",
    calls = c(BCG_ESC,
              'res <- rma(yi, vi, data=dat, method=M) for M in REML, DL, FE',
              'tes(res) (defaults: alternative="two.sided", alpha=0.05, tes.alternative="greater", tes.alpha=0.1, test chosen by metafor: "exact" when the number of outcome sets <= 1e6, theta = the model estimate) -> <M>_default',
              'tes(res, test=T) for T in exact, binom, chi2 -> <M>_<T>; tes(res, test="exact", rel.tol=1e-10) -> <M>_exact_rel.tol_1e-10',
              'tes(res, tes.alternative="two.sided"/"less") (REML) ; tes(res, test="chi2", correct=TRUE) (REML); tes(yi, vi) (theta = FE estimate) -> default_vector_input',
              'same block for dat.hackshaw1998 (yi, vi as supplied) under "hackshaw1998" (k = 37: no forced exact test, 2^37 outcome sets; the default there is the chi2 test as metafor picks it)',
              'exported: k, O (observed significant), E (expected = sum of power), OEratio, test, X2 (chi2 only), pval, theta, theta.lim (limit estimate where pval = tes.alpha; found by uniroot with its default tol, so good to about 1e-4 only), power, sig'),
    notes = c('The BCG REML exact-test p (0.5840585...) is the value quoted in the issue; the DL fit gives 0.5831.',
              'tes() has no control over the uniroot tolerance for theta.lim; compare theta.lim at about 1e-4.'))
}

## ---------------------------------------------------------------------------------------------
## 4. regression tests on 2x2 data
## ---------------------------------------------------------------------------------------------
reg_summary <- function(rt) {
  f <- rt$fit
  list(model = rt$model, predictor = rt$predictor, zval = rt$zval, pval = rt$pval, dfs = rt$dfs,
       est = rt$est, ci.lb = rt$ci.lb, ci.ub = rt$ci.ub,
       fit_coef_names = I(names(coef(f))),
       fit_coef = I(unname(as.vector(coef(f)))),
       fit_se = if (inherits(f, "lm")) I(unname(summary(f)$coefficients[, 2])) else I(unname(as.vector(f$se))),
       fit_tau2 = if (inherits(f, "rma")) f$tau2 else NULL)
}
lm_summary <- function(f, term) {
  cf <- summary(f)$coefficients
  list(coef_names = I(rownames(cf)), coef = I(unname(cf[, 1])), se = I(unname(cf[, 2])),
       tval = I(unname(cf[, 3])), pval = I(unname(cf[, 4])), df = f$df.residual,
       test_term = term, test_t = unname(cf[term, 3]), test_p = unname(cf[term, 4]))
}
if ("reg" %in% PARTS) {
  out <- list()
  d <- dat.bcg
  for (meas in c("OR", "RR")) {
    e <- escalc(meas, ai = tpos, bi = tneg, ci = cpos, di = cneg, data = d)
    out[[paste0(meas, "_yi")]] <- I(as.vector(e$yi)); out[[paste0(meas, "_vi")]] <- I(as.vector(e$vi))
    out[[paste0(meas, "_ni")]] <- I(as.vector(attr(e$yi, "ni")))
    for (fm in c("FE", "REML")) {
      res <- rma(yi, vi, data = e, method = fm)
      for (mdl in c("lm", "rma")) for (pr in c("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")) {
        out[[paste(meas, fm, mdl, pr, sep = "_")]] <- reg_summary(regtest(res, model = mdl, predictor = pr, ret.fit = TRUE))
      }
    }
  }
  ## Peters (2006) with its own weights and Harbord (2006) score test: plain lm(), NOT metafor, formulas as published
  e <- escalc("OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = d)
  n1 <- as.numeric(d$tpos + d$tneg); n2 <- as.numeric(d$cpos + d$cneg); N <- n1 + n2
  ev <- as.numeric(d$tpos + d$cpos); nev <- as.numeric(d$tneg + d$cneg)
  wP <- 1 / (1 / ev + 1 / nev)
  out$peters2006_manual <- lm_summary(lm(as.vector(e$yi) ~ I(1 / N), weights = wP), "(Intercept)")
  out$peters2006_manual$slope_t <- out$peters2006_manual$tval[2]; out$peters2006_manual$slope_p <- out$peters2006_manual$pval[2]
  Z <- d$tpos - n1 * ev / N
  V <- n1 * n2 * ev * nev / (N^2 * (N - 1))
  out$harbord2006_manual <- lm_summary(lm(I(Z / sqrt(V)) ~ sqrt(V)), "(Intercept)")
  out$meta_package <- list(error = "R package 'meta' is not installed (no r-cran-meta in Debian 12's archive here); meta::metabias results not generated")
  inp <- bcg_inp
  write_case("regtest_binary", inp, out, dataset = "dat.bcg",
    calls = c('e <- escalc(M, ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg) for M in OR, RR -> <M>_yi, <M>_vi, <M>_ni (ni = n1i+n2i, stored by escalc)',
              'res <- rma(yi, vi, data=e, method=F) for F in FE, REML',
              'regtest(res, model=MDL, predictor=P, ret.fit=TRUE) for MDL in lm, rma and P in sei, vi, ni, ninv, sqrtni, sqrtninv -> <M>_<F>_<MDL>_<P>',
              'metafor\'s version of Peters\' test is regtest(res, model="lm", predictor="ninv") with res on the log OR (its weights are 1/vi, not Peters\' weights): OR_FE_lm_ninv (model="lm" ignores tau2, so OR_REML_lm_ninv is identical)',
              'exported: zval (t for model="lm"), pval, dfs, est/ci.lb/ci.ub (limit estimate: intercept; NULL for ni/sqrtni), fit_coef/fit_se (intercept, predictor), fit_tau2 (model="rma")',
              'peters2006_manual (not metafor): lm(yi_logOR ~ I(1/N), weights = 1/(1/(tpos+cpos) + 1/(tneg+cneg))) with N = total sample size; Peters\' test is the slope (slope_t, slope_p); test_term/test_t/test_p hold the intercept',
              'harbord2006_manual (not metafor): Z = tpos - n1*(tpos+cpos)/N, V = n1*n2*(tpos+cpos)*(tneg+cneg)/(N^2*(N-1)); lm(Z/sqrt(V) ~ sqrt(V)); the test is the intercept (test_t, test_p, df)'),
    notes = c('meta::metabias (Harbord/Peters/Macaskill) could not be run: package meta is not installed and not in the Debian archive used here. The two *_manual entries are plain R lm() fits of the published formulas, given as a cross-check, not as meta output.',
              'For model="lm" regtest uses lm(yi ~ predictor, weights=1/vi) and a t test with k-2 df.'))
}

## ---------------------------------------------------------------------------------------------
## 5. test = "t", "knha", "adhoc"
## ---------------------------------------------------------------------------------------------
if ("tadhoc" %in% PARTS) {
  out <- list()
  for (m in c("REML", "DL", "PM")) for (tt in c("z", "t", "knha", "adhoc")) {
    r <- with_warn(rma(yi, vi, data = bcg, method = m, test = tt))
    if (refused(r$value)) { out[[paste0(m, "_", tt)]] <- unclass(r$value); next }
    s <- rma_summary(r$value)
    s$s2w <- r$value$s2w
    s$predict <- pred_summary(predict(r$value))
    s$warnings <- I(r$warnings)
    out[[paste0(m, "_", tt)]] <- s
  }
  write_case("rma_test_t_adhoc", bcg_inp, out, dataset = "dat.bcg",
    calls = c(BCG_ESC,
              'res <- rma(yi, vi, data=dat, method=M, test=T, control=list(tol=1e-12, threshold=1e-12, maxiter=1000)) for M in REML, DL, PM and T in z, t, knha, adhoc -> <M>_<T>',
              'predict(res) -> predict (pred, se, ci.lb, ci.ub, pi.lb, pi.ub)',
              'exported: rma_summary fields (b, se, zval (= t value for t/knha/adhoc), pval, ci.lb, ci.ub, ddf, tau2, ...), s2w (Knapp-Hartung scale factor; 1 for z/t)'),
    notes = c('metafor 3.8.1 supports test="adhoc": Knapp-Hartung with the scale factor truncated below at 1 (so the SE is never smaller than the unadjusted one; Jackson et al. 2017, sec 4.3).',
              'For BCG the KH factor exceeds 1 for these estimators, so knha and adhoc coincide; see s2w.'))
}

## ---------------------------------------------------------------------------------------------
## 6. Mantel-Haenszel with no events / all events
## ---------------------------------------------------------------------------------------------
mh_summary <- function(x) {
  if (refused(x$value)) return(c(unclass(x$value), list(warnings = I(x$warnings))))
  r <- x$value
  list(measure = r$measure, k = r$k, k.yi = r$k.yi, b = c(r$beta), se = r$se, zval = r$zval, pval = r$pval,
       ci.lb = r$ci.lb, ci.ub = r$ci.ub, QE = r$QE, QEp = r$QEp, I2 = r$I2, H2 = r$H2,
       MH = r$MH, MHp = r$MHp, TA = r$TA, TAp = r$TAp,
       yi = I(as.vector(r$yi)), vi = I(as.vector(r$vi)), warnings = I(x$warnings))
}
if ("mh" %in% PARTS) {
  none <- data.frame(table = c("none", "none", "none"), ai = c(0, 0, 0), n1i = c(10, 15, 20), ci = c(0, 0, 0), n2i = c(12, 15, 18))
  all_ <- data.frame(table = c("all", "all", "all"), ai = c(10, 15, 20), n1i = c(10, 15, 20), ci = c(12, 15, 18), n2i = c(12, 15, 18))
  out <- list()
  for (nm in c("no_events", "all_events")) {
    dd <- if (nm == "no_events") none else all_
    for (meas in c("RD", "RR", "OR")) {
      out[[paste0(nm, "_", meas)]] <- mh_summary(with_warn(rma.mh(ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dd, measure = meas)))
      out[[paste0(nm, "_", meas, "_drop00_FALSE")]] <- mh_summary(with_warn(rma.mh(ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dd, measure = meas, drop00 = FALSE)))
    }
  }
  write_case("mh_zero_events", rbind(none, all_), out, dataset = "constructed 2x2 tables (no events in any arm / all events in every arm)",
    calls = c('rows "none": ai = ci = 0, n1i = 10,15,20, n2i = 12,15,18 (no events anywhere); rows "all": ai = n1i, ci = n2i (every subject has the event)',
              'rma.mh(ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=<rows>, measure=M) for M in RD, RR, OR -> no_events_<M> / all_events_<M>  (defaults add=1/2, to="only0", drop00=TRUE, correct=TRUE)',
              'same with drop00=FALSE -> *_drop00_FALSE',
              'exported: b (log scale for RR/OR), se, zval, pval, ci.lb, ci.ub, QE, QEp, I2, H2, MH/MHp, TA/TAp (OR), k.yi, per-study yi/vi, warnings; or {"error": message} when metafor stops'),
    notes = 'input.csv holds both sets of tables (column table = none / all); each rma.mh call uses only its own three rows.')
}

## ---------------------------------------------------------------------------------------------
## 7. SMDH (3.8.1 variance) and DLIT (3.8.1 iteration)
## ---------------------------------------------------------------------------------------------
if ("smdh" %in% PARTS) {
  d <- dat.normand1999
  e <- escalc("SMDH", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = d)
  cmi <- metafor:::.cmicalc(d$n1i + d$n2i - 2)
  out <- list(yi = I(as.vector(e$yi)), vi = I(as.vector(e$vi)), cmi = I(cmi),
              vi_divided_by_cmi2 = I(as.vector(e$vi) / cmi^2))
  res <- rma(yi, vi, data = e, method = "REML")
  out$rma_REML <- rma_summary(res)
  write_case("smdh_versions", d[, c("study", "source", "n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i")], out, dataset = "dat.normand1999",
    calls = c('e <- escalc("SMDH", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=dat.normand1999) -> yi, vi (metafor 3.8.1)',
              'cmi = metafor:::.cmicalc(n1i+n2i-2) (small-sample correction, exact gamma form); vi_divided_by_cmi2 = vi / cmi^2',
              'rma(yi, vi, data=e, method="REML") -> rma_REML'),
    notes = c('metafor 3.8.1 SMDH: si = sqrt((sd1i^2+sd2i^2)/2), yi = cmi*(m1i-m2i)/si, vi = cmi^2 * [ yi^2*(sd1i^4/(n1i-1) + sd2i^4/(n2i-1)) / (2*(sd1i^2+sd2i^2)^2) + (sd1i^2/(n1i-1) + sd2i^2/(n2i-1)) / ((sd1i^2+sd2i^2)/2) ] (note: the bracket uses the corrected yi, and the whole is multiplied by cmi^2).',
              'metafor NEWS (4.6-0, 2024-03-28): "calculation of the sampling variances for measures \"SMDH\", \"SMD1H\", and \"SMCRH\" was slightly adjusted for consistency". The NEWS gives no formula or numbers, so newer-version values are not quoted here; vi_divided_by_cmi2 is the 3.8.1 vi without the cmi^2 factor, given only as an aid, not as a metafor >= 4.6 value.'))

  out <- list()
  for (ctl in list(list(nm = "default", c = list()), list(nm = "maxiter1000_threshold1e-12", c = list(maxiter = 1000, threshold = 1e-12)))) {
    r <- with_warn(metafor::rma(yi, vi, data = bcg, method = "DLIT", control = ctl$c))
    s <- if (refused(r$value)) unclass(r$value) else c(rma_summary(r$value), list(iterations = r$value$fit.stats, warnings = I(r$warnings)))
    s$iterations <- NULL
    out[[paste0("DLIT_", ctl$nm)]] <- s
  }
  out$DL <- rma_summary(rma(yi, vi, data = bcg, method = "DL"))
  out$PM <- rma_summary(rma(yi, vi, data = bcg, method = "PM"))
  ## the 3.8.1 fixed point: tau2 = (Q(tau2) - (k-p)) / tr(P(tau2)) (generalised-Q update iterated from tau2 = 0)
  fp <- function(t2) { w <- 1 / (bcg$vi + t2); W <- diag(w); X <- matrix(1, nrow(bcg), 1)
    P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
    c(Q = c(t(bcg$yi) %*% P %*% bcg$yi), trP = sum(diag(P))) }
  t2 <- out[["DLIT_maxiter1000_threshold1e-12"]]$tau2
  q <- fp(t2)
  out$DLIT_check <- list(tau2 = t2, Q_at_tau2 = unname(q["Q"]), trP_at_tau2 = unname(q["trP"]),
                         update_at_tau2 = unname((q["Q"] - (nrow(bcg) - 1)) / q["trP"]),
                         equals_PM = isTRUE(abs(t2 - out$PM$tau2) < 1e-8))
  write_case("dlit_bcg", bcg_inp, out, dataset = "dat.bcg",
    calls = c(BCG_ESC,
              'metafor::rma(yi, vi, data=dat, method="DLIT") -> DLIT_default (metafor defaults: threshold=1e-5, maxiter=100)',
              'metafor::rma(yi, vi, data=dat, method="DLIT", control=list(maxiter=1000, threshold=1e-12)) -> DLIT_maxiter1000_threshold1e-12',
              'rma(yi, vi, data=dat, method="DL"), rma(..., method="PM") (tol=threshold=1e-12) -> DL, PM for comparison',
              'DLIT_check: Q(tau2) = generalised Q at the DLIT tau2, trP = tr(P), update_at_tau2 = (Q - (k-1))/trP (= tau2 at the fixed point)'),
    notes = c('metafor 3.8.1 DLIT starts at tau2 = 0 (or tau2.init) and iterates tau2 <- (Q(tau2) - (k-p)) / tr(P(tau2)), P = W - W X (X\'WX)^-1 X\'W, W = diag(1/(vi+tau2)), truncating at tau2.min, until |change| <= threshold.',
              'The brief for this case said newer metafor (>= 4.x) changed DLIT to iterate to the Paule-Mandel root. metafor\'s NEWS (stored copy up to 4.7-4) has no DLIT entry, so that is not confirmed here; DLIT_check shows the 3.8.1 fixed point is NOT the Paule-Mandel root on BCG (DLIT tau2 = 0.15757 vs PM 0.31807): the 3.8.1 update divides Q(tau2) - (k-p) by tr(P(tau2)), which is the DL moment equation only at tau2 = 0 (first iteration = DL, 0.30876).',
              'With metafor\'s default control (threshold=1e-5, maxiter=100) metafor 3.8.1 stops with "Iterative DL estimator did not converge." on BCG (DLIT_default holds that error).'))
}

cat("11_bias_selection done:", paste(PARTS, collapse = ","), "\n")
