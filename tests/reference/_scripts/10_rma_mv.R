## (j) [10_rma_mv.R] rma.mv models (three-level, multivariate UN, longitudinal AR/HAR/CS), vcalc() matrices,
##     and cluster-robust (CR0/CR1/CR2) inference via metafor::robust() and clubSandwich.
source("scripts/common.R")
suppressPackageStartupMessages(library(clubSandwich))

## Tight convergence for rma.mv: the optimizer is nlminb (metafor's default); these control
## elements are handed to it. Every rma.mv() below goes through this wrapper.
MVTIGHT <- list(rel.tol = 1e-12, iter.max = 10000, eval.max = 10000)
MVTIGHT_TXT <- "control=list(rel.tol=1e-12, iter.max=10000, eval.max=10000) (optimizer nlminb, metafor's default)"
inits_from <- function(r, floor = 1e-8) {
  ctrl <- list()
  if (r$withS) ctrl$sigma2.init <- pmax(r$sigma2, floor)
  if (r$withG) { ctrl$tau2.init <- pmax(r$tau2, floor); ctrl$rho.init <- r$rho }
  if (r$withH) { ctrl$gamma2.init <- pmax(r$gamma2, floor); ctrl$phi.init <- r$phi }
  ctrl
}
## Route: (1) tight nlminb from metafor's default start; if nlminb stops with a non-zero code
## (with rel.tol=1e-12 it sometimes reports "singular convergence (7)" right at the optimum),
## (2) fit with metafor's default control and refit tight from that solution and from it scaled by
## 0.9, 1.1, 0.5, 2 (variance components; correlations kept); the converged tight fit with the
## highest logLik is kept. (3) only if all of those fail: the same at rel.tol=1e-11.
scale_inits <- function(ctrl, f) {
  for (nm in intersect(names(ctrl), c("sigma2.init", "tau2.init", "gamma2.init"))) ctrl[[nm]] <- ctrl[[nm]] * f
  ctrl
}
rma.mv <- function(..., control = list()) {
  pf <- parent.frame()
  cl <- match.call(expand.dots = TRUE)
  cl[[1]] <- quote(metafor::rma.mv)
  cl$control <- utils::modifyList(MVTIGHT, control)
  res <- tryCatch(eval(cl, pf), error = function(e) e)
  if (!inherits(res, "error")) { res$fit_route <- "tight nlminb from metafor's default start"; return(polish(res)) }
  msg <- conditionMessage(res)
  cl0 <- cl; cl0$control <- control
  r0 <- eval(cl0, pf)
  for (rt in c(1e-12, 1e-11)) {
    fits <- list()
    for (f in c(1, 0.9, 1.1, 0.5, 2)) {
      cl$control <- utils::modifyList(utils::modifyList(MVTIGHT, control), scale_inits(inits_from(r0), f))
      cl$control$rel.tol <- rt
      r1 <- tryCatch(eval(cl, pf), error = function(e) NULL)
      if (!is.null(r1)) { r1$fit_route <- sprintf("tight nlminb from default start failed (%s); refit at rel.tol=%g starting at the default-control solution x %g (best logLik of the converged restarts x 1, 0.9, 1.1, 0.5, 2)", msg, rt, f); fits[[length(fits) + 1]] <- r1 }
    }
    if (length(fits)) {
      ll <- vapply(fits, function(x) as.numeric(logLik(x)), 0)
      return(polish(fits[[which.max(ll)]]))
    }
  }
  stop("no tight fit converged: ", msg)
}

vec <- function(x) I(unname(as.vector(x)))

mv_summary <- function(r) {
  out <- list(method = r$method, test = r$test, k = r$k, p = r$p,
              struct = I(r$struct),
              coef_names = I(names(coef(r))),
              b = vec(r$beta), se = vec(r$se), zval = vec(r$zval), pval = vec(r$pval),
              ci.lb = vec(r$ci.lb), ci.ub = vec(r$ci.ub),
              vcov = unname(vcov(r)),
              QE = r$QE, QEdf = r$k - r$p, QEp = r$QEp, QM = r$QM, QMp = r$QMp, QMdf = I(r$QMdf),
              logLik = as.numeric(logLik(r)))
  if (r$withS) {
    out$sigma2 <- vec(r$sigma2); out$s.nlevels <- vec(r$s.nlevels); out$s.names <- I(r$s.names)
  }
  if (r$withG) {
    out$tau2 <- vec(r$tau2); out$rho <- vec(r$rho); out$g.names <- I(r$g.names)
    out$g.levels.k <- vec(r$g.levels.k)
    out$G <- unname(r$G)
  }
  if (r$withH) {
    out$gamma2 <- vec(r$gamma2); out$phi <- vec(r$phi)
  }
  if (!is.null(r$ddf)) out$ddf <- vec(r$ddf)
  fs <- tryCatch(fitstats(r), error = function(e) NULL)
  if (!is.null(fs)) out$fitstats <- list(rows = I(rownames(fs)), values = vec(fs[, 1]))
  out$convergence <- refit_check(r)
  out
}

## polish: refit from the solution (tight; tight from solution x 1.01 and x 0.99; nlminb default
## rel.tol) and keep a refit if its logLik is higher; up to 3 rounds.
polish <- function(r) {
  route <- r$fit_route
  for (round in 1:3) {
    cands <- list(utils::modifyList(MVTIGHT, inits_from(r)),
                  utils::modifyList(MVTIGHT, scale_inits(inits_from(r), 1.01)),
                  utils::modifyList(MVTIGHT, scale_inits(inits_from(r), 0.99)),
                  inits_from(r))
    fits <- Filter(Negate(is.null), lapply(cands, function(ct) tryCatch(update(r, control = ct), error = function(e) NULL)))
    if (!length(fits)) break
    ll <- vapply(fits, function(x) as.numeric(logLik(x)), 0)
    if (max(ll) <= as.numeric(logLik(r))) break
    r <- fits[[which.max(ll)]]
    route <- paste0(route, sprintf("; polish round %d: a refit from the solution raised logLik", round))
  }
  r$fit_route <- route
  r
}

## refit from the solution: the estimates must not move. Tries, in turn, the tight control started
## exactly at the solution, then the tight control started at the solution x 1.01 (variance
## components), then nlminb's default rel.tol started at the solution; reports the first that converges.
refit_check <- function(r) {
  th1 <- c(r$sigma2, r$tau2, r$rho, r$gamma2, r$phi)
  tries <- list(list(lab = "tight control started at the solution", ctrl = utils::modifyList(MVTIGHT, inits_from(r))),
                list(lab = "tight control started at the solution x 1.01 (variance components)", ctrl = utils::modifyList(MVTIGHT, scale_inits(inits_from(r), 1.01))),
                list(lab = "nlminb default rel.tol started at the solution", ctrl = inits_from(r)))
  errs <- character(0)
  for (t in tries) {
    r2 <- tryCatch(update(r, control = t$ctrl), error = function(e) e)
    if (inherits(r2, "error")) { errs <- c(errs, paste0(t$lab, ": ", conditionMessage(r2))); next }
    th2 <- c(r2$sigma2, r2$tau2, r2$rho, r2$gamma2, r2$phi)
    return(list(control = "rel.tol=1e-12, iter.max=10000, eval.max=10000", fit_route = r$fit_route,
         refit = t$lab, refit_failed = if (length(errs)) I(errs) else NULL,
         refit_from_solution_max_abs_change_varcomp = max(abs(th1 - th2)),
         refit_from_solution_max_abs_change_beta = max(abs(r$beta - r2$beta)),
         refit_from_solution_change_logLik = as.numeric(logLik(r2)) - as.numeric(logLik(r))))
  }
  list(control = "rel.tol=1e-12, iter.max=10000, eval.max=10000", fit_route = r$fit_route, refit_failed = I(errs))
}

rob_summary <- function(rb) {
  out <- list(coef_names = I(names(coef(rb))),
              b = vec(rb$beta), se = vec(rb$se), zval = vec(rb$zval), pval = vec(rb$pval),
              ci.lb = vec(rb$ci.lb), ci.ub = vec(rb$ci.ub),
              vcov = unname(vcov(rb)),
              ddf = vec(rb$ddf), dfs = if (!is.null(rb$dfs)) vec(rb$dfs) else NULL,
              QM = rb$QM, QMp = rb$QMp, QMdf = I(rb$QMdf), n_clusters = rb$n, test = rb$test)
  out[!vapply(out, is.null, TRUE)]
}

## clubSandwich: vcovCR + coef_test (Satterthwaite) for several CR types
CS_TYPES <- c("CR0", "CR1", "CR1p", "CR2")
cs_block <- function(r, cluster, types = CS_TYPES) {
  out <- list()
  for (ty in types) {
    V <- vcovCR(r, cluster = cluster, type = ty)
    ct <- as.data.frame(coef_test(r, vcov = ty, cluster = cluster, test = "Satterthwaite"))
    out[[ty]] <- list(vcovCR = unname(as.matrix(V)),
                      coef = I(as.character(ct$Coef)), beta = vec(ct$beta), SE = vec(ct$SE),
                      tstat = vec(ct$tstat), df_Satt = vec(ct$df_Satt), p_Satt = vec(ct$p_Satt))
  }
  out
}
wald_block <- function(r, cluster, constraints, type = "CR2", tests = c("HTZ", "HTA", "HTB", "chi-sq", "Naive-F")) {
  w <- as.data.frame(Wald_test(r, constraints = constraints, vcov = type, cluster = cluster, test = tests))
  list(vcov = type, test = I(as.character(w$test)), Fstat = vec(w$Fstat), delta = vec(w$delta),
       df_num = vec(w$df_num), df_denom = vec(w$df_denom), p_val = vec(w$p_val))
}
ranef_summary <- function(r) {
  re <- ranef(r)
  lapply(re, function(d) { d <- as.data.frame(d); c(list(rows = I(rownames(d))), lapply(as.list(d), vec)) })
}
## profile-likelihood CIs: uniroot tol=1e-12; profile refits use the fit's tight control; if any bound
## cannot be obtained that way, redo with the profile refits at nlminb's default rel.tol (1e-10)
## (the LRT needs only the profiled logLik, which that gives to ~1e-9).
confint_tight <- function(r) {
  ci <- suppressWarnings(confint(r))
  bounds <- function(ci) { if (!is.null(ci$random)) ci <- list(ci); unlist(lapply(Filter(function(x) is.list(x) && !is.null(x$random), ci), function(x) x$random[, 2:3])) }
  route <- "uniroot tol=1e-12; profile refits with the fit's control (rel.tol=1e-12)"
  if (anyNA(bounds(ci))) {
    r2 <- r; r2$control$rel.tol <- NULL
    ci <- suppressWarnings(confint(r2))
    route <- "uniroot tol=1e-12; profile refits at nlminb default rel.tol (the rel.tol=1e-12 refits failed for some bound)"
  }
  list(components = confint_mv(ci), route = route)
}
confint_mv <- function(ci) {
  if (!is.null(ci$random)) ci <- list(ci)
  cis <- Filter(function(x) is.list(x) && !is.null(x$random), ci)
  lapply(cis, function(x) {
    r <- x$random
    list(rows = I(rownames(r)), estimate = vec(r[, "estimate"]), ci.lb = vec(r[, "ci.lb"]), ci.ub = vec(r[, "ci.ub"]))
  })
}
cs_version_note <- paste("clubSandwich", packageVersion("clubSandwich"), "(Debian r-cran-clubsandwich).",
  "clubSandwich CR1 = CR0 * m/(m-1); CR1p = CR0 * m/(m-p) (m clusters, p coefficients), which is metafor's robust(adjust=TRUE);",
  "metafor robust(adjust=FALSE) = CR0. coef_test uses Satterthwaite df for every type.")
CONV_NOTES <- c(
  "Convergence: every rma.mv() ran with control=list(rel.tol=1e-12, iter.max=10000, eval.max=10000) (nlminb). If nlminb stopped with a non-zero code from metafor's default start, the model was fitted with metafor's default control and refitted tight from that solution (and from it x0.9, x1.1, x0.5, x2), keeping the converged tight fit with the highest logLik; each fit's convergence$fit_route says which route was used.",
  "convergence$refit_from_solution_*: change in variance components / beta / logLik when refitting with the *.init controls set to the solution (tight control). nlminb's relative-function criterion leaves variance components within about 1e-8 (relative to their size) of the optimum (logLik to ~1e-14), so compare variance components and everything derived from them at ~1e-6 relative.",
  "Profile CIs (confint): uniroot tol=1e-12; confint_profile$route says whether the profile refits ran at rel.tol=1e-12 or (when some of those refits failed) at nlminb's default rel.tol=1e-10.")
## ---------------------------------------------------------------- 1. konstantopoulos2011
dat <- dat.konstantopoulos2011
inp <- dat[, c("district", "school", "study", "year", "yi", "vi")]
out <- list(clubSandwich_version = as.character(packageVersion("clubSandwich")), control = MVTIGHT_TXT)

res <- rma.mv(yi, vi, random = ~ 1 | district/school, data = dat, method = "REML")
out$REML <- mv_summary(res)
out$REML$predict <- pred_summary(predict(res))
out$REML$confint_profile <- confint_tight(res)
out$REML$ranef <- ranef_summary(res)
out$REML$robust_CR0_adjust_FALSE <- rob_summary(robust(res, cluster = district, adjust = FALSE))
out$REML$robust_CR1p_adjust_TRUE <- rob_summary(robust(res, cluster = district, adjust = TRUE))
out$REML$robust_clubSandwich_CR2 <- rob_summary(robust(res, cluster = district, clubSandwich = TRUE))
out$REML$clubSandwich <- cs_block(res, dat$district)

resML <- rma.mv(yi, vi, random = ~ 1 | district/school, data = dat, method = "ML")
out$ML <- mv_summary(resML)
out$ML$confint_profile <- confint_tight(resML)
out$ML$ranef <- ranef_summary(resML)

out$year_mean <- mean(dat$year)
resm <- rma.mv(yi, vi, mods = ~ I(year - mean(year)), random = ~ 1 | district/school, data = dat, method = "REML")
out$REML_mod_year <- mv_summary(resm)
out$REML_mod_year$confint_profile <- confint_tight(resm)
out$REML_mod_year$ranef <- ranef_summary(resm)
out$REML_mod_year$robust_CR0_adjust_FALSE <- rob_summary(robust(resm, cluster = district, adjust = FALSE))
out$REML_mod_year$robust_CR1p_adjust_TRUE <- rob_summary(robust(resm, cluster = district, adjust = TRUE))
out$REML_mod_year$robust_clubSandwich_CR2 <- rob_summary(robust(resm, cluster = district, clubSandwich = TRUE))
out$REML_mod_year$clubSandwich <- cs_block(resm, dat$district)
out$REML_mod_year$Wald_test_year_CR2 <- wald_block(resm, dat$district, constrain_zero(2))

resmML <- rma.mv(yi, vi, mods = ~ I(year - mean(year)), random = ~ 1 | district/school, data = dat, method = "ML")
out$ML_mod_year <- mv_summary(resmML)

calls <- c(paste("every rma.mv() below ran with", MVTIGHT_TXT, "; convergence$refit_* = change after refitting with sigma2.init/tau2.init/rho.init set to the solution"),
  'res <- rma.mv(yi, vi, random = ~ 1 | district/school, data=dat.konstantopoulos2011, method="REML") -> REML (sigma2[1] = district, sigma2[2] = district/school)',
  'predict(res) -> REML$predict; confint(res, control=list(tol=1e-12)) (profile-likelihood CIs of sigma2.1, sigma2.2) -> REML$confint_profile; ranef(res) (BLUPs, se, pi.lb, pi.ub per level) -> REML$ranef',
  'robust(res, cluster=district, adjust=FALSE) -> robust_CR0_adjust_FALSE; robust(res, cluster=district, adjust=TRUE) (vcov * m/(m-p)) -> robust_CR1p_adjust_TRUE; robust(res, cluster=district, clubSandwich=TRUE) -> robust_clubSandwich_CR2',
  'clubSandwich: for type in CR0, CR1, CR1p, CR2: vcovCR(res, cluster=dat$district, type=type) -> clubSandwich$<type>$vcovCR; coef_test(res, vcov=type, cluster=dat$district, test="Satterthwaite") -> beta, SE, tstat, df_Satt, p_Satt',
  'rma.mv(..., method="ML") -> ML (with confint, ranef)',
  'resm <- rma.mv(yi, vi, mods = ~ I(year - mean(year)), random = ~ 1 | district/school, data=dat, method="REML") -> REML_mod_year (same robust/clubSandwich/confint/ranef blocks)',
  'Wald_test(resm, constraints=constrain_zero(2), vcov="CR2", cluster=dat$district, test=c("HTZ","HTA","HTB","chi-sq","Naive-F")) -> REML_mod_year$Wald_test_year_CR2',
  'rma.mv(yi, vi, mods = ~ I(year - mean(year)), ..., method="ML") -> ML_mod_year')
write_case("mv_konstantopoulos2011", inp, out, dataset = "dat.konstantopoulos2011", calls = calls,
  notes = c("56 effect sizes (schools) in 11 districts.", cs_version_note,
            "Multilevel I2 per level is not provided by metafor and is not exported.", CONV_NOTES))
cat("mv_konstantopoulos2011 done\n")
## ---------------------------------------------------------------- 2. berkey1998 (multivariate, UN)
dat <- dat.berkey1998
V <- vcalc(vi = 1, cluster = author, rvars = c(v1i, v2i), data = dat)
Vb <- bldiag(lapply(split(dat[, c("v1i", "v2i")], dat$trial), as.matrix))
inp <- dat[, c("trial", "author", "year", "ni", "outcome", "yi", "vi", "v1i", "v2i")]
out <- list(clubSandwich_version = as.character(packageVersion("clubSandwich")), control = MVTIGHT_TXT,
            V = unname(V), V_vcalc_equals_bldiag_max_abs_diff = max(abs(V - Vb)))
for (m in c("REML", "ML")) {
  res <- rma.mv(yi, V, mods = ~ outcome - 1, random = ~ outcome | trial, struct = "UN", data = dat, method = m)
  s <- mv_summary(res)
  s$confint_profile <- confint_tight(res)
  s$anova_X_c1_m1 <- { a <- anova(res, X = c(1, -1)); list(Xb = vec(a$Xb), se = vec(a$se), zval = vec(a$zval), pval = vec(a$pval)) }
  s$robust_CR0_adjust_FALSE <- rob_summary(robust(res, cluster = trial, adjust = FALSE))
  s$robust_CR1p_adjust_TRUE <- rob_summary(robust(res, cluster = trial, adjust = TRUE))
  s$robust_clubSandwich_CR2 <- rob_summary(robust(res, cluster = trial, clubSandwich = TRUE))
  s$clubSandwich <- cs_block(res, dat$trial)
  s$Wald_test_equal_CR2 <- wald_block(res, dat$trial, constrain_equal(1:2))
  s$Wald_test_zero_CR2 <- wald_block(res, dat$trial, constrain_zero(1:2))
  out[[m]] <- s
}
calls <- c(paste("every rma.mv() below ran with", MVTIGHT_TXT),
  'V <- vcalc(vi=1, cluster=author, rvars=c(v1i, v2i), data=dat.berkey1998) -> V (10x10; equals bldiag of the per-trial 2x2 matrices [v1i v2i], see V_vcalc_equals_bldiag_max_abs_diff)',
  'res <- rma.mv(yi, V, mods = ~ outcome - 1, random = ~ outcome | trial, struct="UN", data=dat, method=M) for M in REML, ML -> REML, ML (tau2[1]=AL, tau2[2]=PD (factor level order), rho, G)',
  'confint(res, control=list(tol=1e-12)) -> confint_profile (tau^2.1, tau^2.2, rho); anova(res, X=c(1,-1)) -> anova_X_c1_m1 (AL - PD)',
  'robust(res, cluster=trial, adjust=FALSE / adjust=TRUE / clubSandwich=TRUE) -> robust_CR0_adjust_FALSE / robust_CR1p_adjust_TRUE / robust_clubSandwich_CR2',
  'clubSandwich: vcovCR(res, cluster=dat$trial, type=T), coef_test(res, vcov=T, cluster=dat$trial, test="Satterthwaite") for T in CR0, CR1, CR1p, CR2 -> clubSandwich$<T>',
  'Wald_test(res, constraints=constrain_equal(1:2) / constrain_zero(1:2), vcov="CR2", cluster=dat$trial, test=c("HTZ","HTA","HTB","chi-sq","Naive-F")) -> Wald_test_equal_CR2 / Wald_test_zero_CR2')
write_case("mv_berkey1998", inp, out, dataset = "dat.berkey1998", calls = calls,
  notes = c("5 trials x 2 outcomes (AL, PD); rows in input.csv order (trial 1 PD, AL, ...): coefficient order is outcomeAL, outcomePD.",
            cs_version_note, CONV_NOTES))
cat("mv_berkey1998 done\n")
## ---------------------------------------------------------------- 3. assink2016 (three-level)
dat <- dat.assink2016
dat$deltype <- relevel(factor(dat$deltype), ref = "general")
inp <- dat[, c("study", "esid", "id", "yi", "vi", "pubstatus", "year", "deltype")]
out <- list(clubSandwich_version = as.character(packageVersion("clubSandwich")), control = MVTIGHT_TXT,
            deltype_levels = I(levels(dat$deltype)))
res <- rma.mv(yi, vi, random = ~ 1 | study/esid, data = dat, method = "REML")
out$REML <- mv_summary(res)
out$REML$confint_profile <- confint_tight(res)
out$REML$robust_CR0_adjust_FALSE <- rob_summary(robust(res, cluster = study, adjust = FALSE))
out$REML$robust_CR1p_adjust_TRUE <- rob_summary(robust(res, cluster = study, adjust = TRUE))
out$REML$robust_clubSandwich_CR2 <- rob_summary(robust(res, cluster = study, clubSandwich = TRUE))
out$REML$clubSandwich <- cs_block(res, dat$study)

resm <- rma.mv(yi, vi, mods = ~ deltype, random = ~ 1 | study/esid, data = dat, method = "REML")
out$REML_mod_deltype <- mv_summary(resm)
out$REML_mod_deltype$robust_CR0_adjust_FALSE <- rob_summary(robust(resm, cluster = study, adjust = FALSE))
out$REML_mod_deltype$robust_CR1p_adjust_TRUE <- rob_summary(robust(resm, cluster = study, adjust = TRUE))
out$REML_mod_deltype$robust_clubSandwich_CR2 <- rob_summary(robust(resm, cluster = study, clubSandwich = TRUE))
out$REML_mod_deltype$clubSandwich <- cs_block(resm, dat$study)
out$REML_mod_deltype$Wald_test_deltype_CR2 <- wald_block(resm, dat$study, constrain_zero(2:3))
out$REML_mod_deltype$Wald_test_deltype_equal_CR2 <- wald_block(resm, dat$study, constrain_equal(2:3))

calls <- c(paste("every rma.mv() below ran with", MVTIGHT_TXT),
  'dat <- dat.assink2016; dat$deltype <- relevel(factor(dat$deltype), ref="general")',
  'res <- rma.mv(yi, vi, random = ~ 1 | study/esid, data=dat, method="REML") -> REML (sigma2[1] = study, sigma2[2] = study/esid); confint(res, control=list(tol=1e-12)) -> REML$confint_profile',
  'robust(res, cluster=study, adjust=FALSE / adjust=TRUE / clubSandwich=TRUE) -> robust_CR0_adjust_FALSE / robust_CR1p_adjust_TRUE / robust_clubSandwich_CR2',
  'clubSandwich: vcovCR(res, cluster=dat$study, type=T), coef_test(res, vcov=T, cluster=dat$study, test="Satterthwaite") for T in CR0, CR1, CR1p, CR2 -> clubSandwich$<T>',
  'resm <- rma.mv(yi, vi, mods = ~ deltype, random = ~ 1 | study/esid, data=dat, method="REML") -> REML_mod_deltype (coefficients intrcpt, deltypecovert, deltypeovert) with the same robust/clubSandwich blocks',
  'Wald_test(resm, constraints=constrain_zero(2:3), vcov="CR2", cluster=dat$study, test=c("HTZ","HTA","HTB","chi-sq","Naive-F")) -> Wald_test_deltype_CR2; constrain_equal(2:3) -> Wald_test_deltype_equal_CR2')
write_case("mv_assink2016", inp, out, dataset = "dat.assink2016", calls = calls,
  notes = c("100 effect sizes in 17 studies.", cs_version_note, CONV_NOTES))
cat("mv_assink2016 done\n")
## ---------------------------------------------------------------- 4. ishak2007 (longitudinal)
dat <- dat.ishak2007
dat <- reshape(dat, direction = "long", idvar = "study", v.names = c("yi", "vi"),
               varying = list(c(2, 4, 6, 8), c(3, 5, 7, 9)))
dat <- dat[order(dat$study, dat$time), ]
dat <- dat[!is.na(dat$yi), ]
rownames(dat) <- NULL
inp <- dat[, c("study", "time", "yi", "vi", "mdur", "mbase")]
out <- list(clubSandwich_version = as.character(packageVersion("clubSandwich")), control = MVTIGHT_TXT)
for (st in c("HAR", "AR", "CS")) {
  res <- rma.mv(yi, vi, mods = ~ factor(time) - 1, random = ~ time | study, struct = st, data = dat, method = "REML")
  s <- mv_summary(res)
  s$robust_clubSandwich_CR2 <- rob_summary(robust(res, cluster = study, clubSandwich = TRUE))
  s$clubSandwich <- cs_block(res, dat$study)
  s$Wald_test_equal_CR2 <- wald_block(res, dat$study, constrain_equal(1:4))
  out[[paste0("REML_", st)]] <- s
}
## the metafor help-page variant: V with AR(1) sampling errors, phi = 0.97
V <- vcalc(vi, cluster = study, time1 = time, phi = 0.97, data = dat)
out$V_phi097 <- unname(V)
for (st in c("HAR", "AR", "CS")) {
  res <- rma.mv(yi, V, mods = ~ factor(time) - 1, random = ~ time | study, struct = st, data = dat, method = "REML")
  nm <- paste0("REML_", st, "_V_phi097")
  out[[nm]] <- mv_summary(res)
  out[[nm]]$clubSandwich <- cs_block(res, dat$study, types = "CR2")
}

calls <- c(paste("every rma.mv() below ran with", MVTIGHT_TXT),
  'dat <- reshape(dat.ishak2007, direction="long", idvar="study", v.names=c("yi","vi"), varying=list(c(2,4,6,8), c(3,5,7,9))); dat <- dat[order(dat$study, dat$time),]; dat <- dat[!is.na(dat$yi),]; rownames(dat) <- NULL  (as in help(dat.ishak2007))',
  'res <- rma.mv(yi, vi, mods = ~ factor(time) - 1, random = ~ time | study, struct=S, data=dat, method="REML") for S in HAR, AR, CS -> REML_<S> (HAR: tau2[1..4] per time + rho; AR and CS: tau2 (one value) + rho; G = implied 4x4 matrix)',
  'robust(res, cluster=study, clubSandwich=TRUE) -> robust_clubSandwich_CR2; vcovCR/coef_test(res, vcov=T, cluster=dat$study, test="Satterthwaite") for T in CR0, CR1, CR1p, CR2 -> clubSandwich$<T>',
  'Wald_test(res, constraints=constrain_equal(1:4), vcov="CR2", cluster=dat$study, test=c("HTZ","HTA","HTB","chi-sq","Naive-F")) -> Wald_test_equal_CR2',
  'V <- vcalc(vi, cluster=study, time1=time, phi=0.97, data=dat) -> V_phi097; rma.mv(yi, V, mods = ~ factor(time) - 1, random = ~ time | study, struct=S, data=dat, method="REML") for S in HAR (the help-page model), AR, CS -> REML_<S>_V_phi097, each with clubSandwich CR2 (vcovCR + coef_test)')
write_case("mv_ishak2007", inp, out, dataset = "dat.ishak2007", calls = calls,
  notes = c(sprintf("Long format: %d rows (study x time points 1-4 with non-missing yi) from %d studies.", nrow(dat), length(unique(dat$study))),
            sprintf("With V = diag(vi), rho runs to the boundary 1 for HAR (%.10f) and AR (%.10f): treat those rho values as 1 (atol ~1e-6), and expect the other estimates there to be less well determined; the *_V_phi097 fits have interior rho.", out$REML_HAR$rho, out$REML_AR$rho), cs_version_note, CONV_NOTES))
cat("mv_ishak2007 done\n")
## ---------------------------------------------------------------- 5. vcalc() matrices
with_warnings <- function(expr) {
  w <- character(0)
  val <- withCallingHandlers(expr, warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") })
  list(value = val, warnings = w)
}
WARN <- list()
## (a) shared control groups (dat.knapp2017, example from help(vcalc))
dat <- dat.knapp2017
dat$task.diff <- unlist(lapply(split(dat, dat$study), function(x) {
  task.int <- as.integer(factor(x$task))
  diff.int <- as.integer(factor(x$difficulty))
  diff.int[is.na(diff.int)] <- 1
  paste0(task.int, ".", diff.int)}))
R <- matrix(0.4, nrow = 8, ncol = 8)
R[5:8, 1:4] <- R[1:4, 5:8] <- 0.28
diag(R[1:4, 5:8]) <- 0.7
diag(R[5:8, 1:4]) <- 0.7
diag(R) <- 1
rownames(R) <- colnames(R) <- paste0(rep(1:2, each = 4), ".", 1:4)
a <- with_warnings(vcalc(vi, cluster = study, grp1 = group1, grp2 = group2, w1 = n_sz, w2 = n_hc, data = dat)); V_grp <- a$value; WARN$V_grp_w <- I(a$warnings)
a <- with_warnings(vcalc(vi, cluster = study, grp1 = group1, grp2 = group2, data = dat)); V_grp_uw <- a$value; WARN$V_grp_unweighted <- I(a$warnings)
a <- with_warnings(vcalc(vi, cluster = study, grp1 = group1, grp2 = group2, w1 = n_sz, w2 = n_hc, obs = task.diff, rho = R, data = dat)); V_full <- a$value; WARN$V_grp_w_obs_rhoR <- I(a$warnings)
inp <- dat[, c("study", "task", "difficulty", "group1", "group2", "comp", "yi", "vi", "n_sz", "n_hc", "task.diff")]
out <- list(V_grp_w = unname(V_grp), V_grp_unweighted = unname(V_grp_uw),
            R_obs = unname(R), R_obs_names = I(rownames(R)), V_grp_w_obs_rhoR = unname(V_full),
            vcalc_warnings = WARN)
calls <- c('dat <- dat.knapp2017; dat$task.diff <- (per study: paste0(as.integer(factor(task)), ".", as.integer(factor(difficulty)) with NA -> 1)) (as in help(vcalc)); input.csv column task.diff',
  'V_grp_w: vcalc(vi, cluster=study, grp1=group1, grp2=group2, w1=n_sz, w2=n_hc, data=dat)',
  'V_grp_unweighted: vcalc(vi, cluster=study, grp1=group1, grp2=group2, data=dat)',
  'R_obs: 8x8 matrix, 0.4 within task across difficulties, 0.7 same difficulty across tasks, 0.28 otherwise, 1 on the diagonal; dimnames R_obs_names = 1.1..1.4, 2.1..2.4',
  'V_grp_w_obs_rhoR: vcalc(vi, cluster=study, grp1=group1, grp2=group2, w1=n_sz, w2=n_hc, obs=task.diff, rho=R, data=dat)')
write_case("vcalc_shared_control", inp, out, dataset = "dat.knapp2017", calls = calls,
  notes = c("Matrices are dense 66x66, rows/columns in input.csv order.",
            "vcalc_warnings lists vcalc's warnings per matrix (e.g. 'not positive definite in cluster k' where rows share both groups and, without obs/rho, get correlation 1); the matrices are exported as vcalc returned them."))
cat("vcalc_shared_control done\n")

## (b) time points, AR(1) correlation phi^|t_i - t_j| (dat.ishak2007 long format)
dat <- dat.ishak2007
dat <- reshape(dat, direction = "long", idvar = "study", v.names = c("yi", "vi"),
               varying = list(c(2, 4, 6, 8), c(3, 5, 7, 9)))
dat <- dat[order(dat$study, dat$time), ]
dat <- dat[!is.na(dat$yi), ]
rownames(dat) <- NULL
dat$months <- c(3, 6, 12, 24)[dat$time]
inp <- dat[, c("study", "time", "months", "yi", "vi")]
out <- list(V_time1_phi09 = unname(vcalc(vi, cluster = study, time1 = time, phi = 0.9, data = dat)),
            V_time1_phi097 = unname(vcalc(vi, cluster = study, time1 = time, phi = 0.97, data = dat)),
            V_time1_months_phi09 = unname(vcalc(vi, cluster = study, time1 = months, phi = 0.9, data = dat)),
            V_obs_rho06 = unname(vcalc(vi, cluster = study, obs = time, rho = 0.6, data = dat)))
calls <- c('dat: dat.ishak2007 reshaped to long format as in help(dat.ishak2007) (order by study, time; rows with NA yi dropped); months = c(3, 6, 12, 24)[time] (a made-up unequally spaced time scale)',
  'V_time1_phi09: vcalc(vi, cluster=study, time1=time, phi=0.9, data=dat)',
  'V_time1_phi097: vcalc(vi, cluster=study, time1=time, phi=0.97, data=dat)',
  'V_time1_months_phi09: vcalc(vi, cluster=study, time1=months, phi=0.9, data=dat)',
  'V_obs_rho06: vcalc(vi, cluster=study, obs=time, rho=0.6, data=dat)')
write_case("vcalc_timepoints", inp, out, dataset = "dat.ishak2007", calls = calls,
  notes = c(sprintf("Matrices are dense %dx%d, rows/columns in input.csv order.", nrow(dat), nrow(dat))))
cat("vcalc_timepoints done\n")

## (c) constant within-study correlation (dat.assink2016)
dat <- dat.assink2016
inp <- dat[, c("study", "esid", "id", "yi", "vi", "deltype")]
out <- list(V_obs_rho06 = unname(vcalc(vi, cluster = study, obs = esid, data = dat, rho = 0.6)),
            V_type_obs_rho07_05 = unname(vcalc(vi, cluster = study, type = deltype, obs = esid, data = dat, rho = c(0.7, 0.5))))
calls <- c('V_obs_rho06: vcalc(vi, cluster=study, obs=esid, data=dat.assink2016, rho=0.6)',
  'V_type_obs_rho07_05: vcalc(vi, cluster=study, type=deltype, obs=esid, data=dat.assink2016, rho=c(0.7, 0.5))  (0.7 within the same deltype, 0.5 across deltypes)')
write_case("vcalc_rho", inp, out, dataset = "dat.assink2016", calls = calls,
  notes = c(sprintf("Matrices are dense %dx%d, rows/columns in input.csv order.", nrow(dat), nrow(dat))))
cat("vcalc_rho done\n")
## ---------------------------------------------------------------- 6. robust CR0/CR1/CR2 for rma.uni (bcg)
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
inp <- data.frame(trial = dat$trial, author = dat$author, year = dat$year, tpos = dat$tpos, tneg = dat$tneg,
                  cpos = dat$cpos, cneg = dat$cneg, ablat = dat$ablat, alloc = dat$alloc,
                  yi = as.numeric(dat$yi), vi = as.numeric(dat$vi), stringsAsFactors = FALSE)
res <- rma(yi, vi, mods = ~ ablat, data = dat, method = "REML")
out <- list(clubSandwich_version = as.character(packageVersion("clubSandwich")),
            control = "rma(): control=list(tol=1e-12, threshold=1e-12, maxiter=1000) (scripts/common.R)",
            REML = rma_summary(res))
for (cn in c("trial", "alloc")) {
  cl <- dat[[cn]]
  o <- list(n_clusters = length(unique(cl)))
  o$robust_CR0_adjust_FALSE <- rob_summary(robust(res, cluster = cl, adjust = FALSE))
  o$robust_CR1p_adjust_TRUE <- rob_summary(robust(res, cluster = cl, adjust = TRUE))
  o$robust_clubSandwich_CR2 <- rob_summary(robust(res, cluster = cl, clubSandwich = TRUE))
  o$clubSandwich <- cs_block(res, cl)
  o$Wald_test_ablat_CR2 <- wald_block(res, cl, constrain_zero(2))
  out[[paste0("cluster_", cn)]] <- o
}
calls <- c('dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)',
  'res <- rma(yi, vi, mods = ~ ablat, data=dat, method="REML", control=list(tol=1e-12, threshold=1e-12, maxiter=1000)) -> REML',
  'for C in trial (13 clusters: each study its own cluster), alloc (3 clusters: random, alternate, systematic) -> cluster_<C>:',
  '  robust(res, cluster=dat$C, adjust=FALSE / adjust=TRUE / clubSandwich=TRUE) -> robust_CR0_adjust_FALSE / robust_CR1p_adjust_TRUE / robust_clubSandwich_CR2',
  '  vcovCR(res, cluster=dat$C, type=T), coef_test(res, vcov=T, cluster=dat$C, test="Satterthwaite") for T in CR0, CR1, CR1p, CR2 -> clubSandwich$<T>',
  '  Wald_test(res, constraints=constrain_zero(2), vcov="CR2", cluster=dat$C, test=c("HTZ","HTA","HTB","chi-sq","Naive-F")) -> Wald_test_ablat_CR2')
write_case("robust_uni_bcg", inp, out, dataset = "dat.bcg", calls = calls,
  notes = c("yi = log risk ratio, vi its sampling variance (escalc defaults).", cs_version_note,
            "With cluster=alloc there are only 3 clusters for 2 coefficients: CR1p = CR0 * 3/(3-2); metafor's robust(adjust=TRUE) t-tests use m-p = 1 df."))
cat("robust_uni_bcg done\n")
