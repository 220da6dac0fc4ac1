// Package analyze measures the deltas between fine-tuned models and their base, the
// evidence the DARE paper (Yu et al., arXiv 2311.03099) rests on: fine-tuning
// deltas are tiny (mostly within 0.002) and redundant, and DARE fails when they are not.
//
// Run streams a base and N models, opened with safetensors.OpenModel, through float32 chunks
// as the engine does, and returns per model, per tensor and overall the Stats of the deltas
// δ = X − B, per pair of models the PairStats of their deltas, and a verdict per model.
// Memory is bounded by the chunk size times the number of models, plus two 256 KiB
// histograms per model; nothing depends on tensor or model size. Natively the models of a
// chunk are compared on Options.Threads goroutines; the results do not depend on it. The
// package opens no files, so the browser calls it as the CLI does: Options.Progress and
// Options.Yield report and let messages in between chunks, a cancelled context stops it,
// Report.MarshalJSON gives the CLI's JSON and ModelReport.Histogram.Bins the log-scale
// histogram of |δ| to draw.
//
// # What is compared
//
// A tensor is compared when it is in the base and every model, with a float dtype (F64, F32,
// F16, BF16) everywhere; dtypes may differ between models. Every other tensor is listed in
// Report.Skipped with the reason. A tensor whose shape differs from the base's is an error
// naming the file, the tensor and both shapes, returned before any data is read.
//
// Values are decoded to float32 (package dtype) and δ = x − b is computed in float64, which
// is exact for any two float32 values whose exponents differ by less than 29 (always for
// weights of a fine-tune). An element where the base or the model is NaN or ±Inf is left out
// of that model's statistics and of the pairs that involve the model, and counted in
// Stats.NonFinite. Sums (norms, dot products) accumulate in float64 in element order, so the
// results do not depend on the chunk size.
//
// # Statistics
//
//   - MaxAbs: max |δ|, exact.
//   - Quantiles of |δ| at 0.5, 0.9, 0.99 and 0.999. The q quantile is the order statistic
//     of rank k = ceil(q·n) (1-based, at least 1) of the n values of |δ|. It is estimated
//     from a log-scale histogram over float32 bits: the top 16 bits of float32(|δ|), so each
//     power of two is cut into 128 bins, and the estimate is the midpoint of the bin that
//     holds rank k (capped at MaxAbs; exactly 0 when it is a zero). Accuracy: for a quantile
//     v ≥ 2^-126 the estimate is within 2^-8 + 2^-24 (< 0.4%) of v, relative; below 2^-126
//     within 2^-132 absolute; a quantile that is exactly 0 is reported as 0. A quantile
//     beyond the float32 range (|δ| ≥ 2^128, only between opposite extreme values) is
//     reported as MaxAbs.
//   - WithinCount, FracWithin: exact counts of |δ| ≤ 0.002 and |δ| ≤ 0.005 (compared in
//     float64), divided by n.
//   - RelNorm: ‖δ‖/‖B‖ (2-norms over the same elements, float64 sums); +Inf when ‖B‖ = 0 and
//     ‖δ‖ ≠ 0, 0 when both are 0.
//   - DARENoise at drop rates p = 0.5, 0.9, 0.99: the expected size of the perturbation DARE
//     adds, relative to the base's norm. DARE keeps each element with probability 1−p and
//     divides survivors by 1−p, so d̂_i − d_i is d_i·p/(1−p) with probability 1−p and −d_i
//     with probability p: E[d̂−d] = 0 and E‖d̂−d‖² = p/(1−p)·‖d‖². The reported value is
//     sqrt(E‖d̂−d‖²)/‖B‖ = sqrt(p/(1−p))·‖δ‖/‖B‖ (1, 3 and 9.95 times RelNorm). NoiseFactor
//     gives the factor for any density, with or without rescaling.
//   - Pairs: Cosine = Σ δa·δb / (‖δa‖·‖δb‖) (NaN when either norm is 0), and SignConflict
//     = the number of elements where δa and δb are both non-zero and of opposite signs,
//     divided by the number where both are non-zero (NaN when there is none). Elements
//     where either delta is zero are neither conflicts nor in the denominator: a pair of
//     fine-tunes with random, independent signs has a rate near 0.5, identical deltas 0.
//
// # Verdicts
//
// Each model gets one verdict, from its overall stats, checked in this order:
//
//   - VerdictNotBase, "not derived from this base": the overall RelNorm is at least
//     UnrelatedRelNorm (0.5), or the tensors whose own RelNorm is at least 0.5 hold at least
//     UnrelatedShare (half) of the compared elements. The second rule is there because
//     norm weights (values near 1) can hold most of ‖B‖ in small models and hide unrelated
//     matrices. Two independent initialisations of the same scale give RelNorm near √2; a
//     fine-tune, a few percent.
//   - VerdictLarge, "deltas too large for aggressive DARE": DARENoise at p = 0.9 is above
//     MaxDARENoise (0.1), that is RelNorm above 1/30. DARE at 90% drop would then move the
//     weights by more than a tenth of their norm, in random directions.
//   - VerdictFineTune, "a fine-tune of this base": otherwise.
//   - VerdictNothing when no tensor could be compared.
//
// The thresholds are judgement, not law: they are meant to put fine-tunes like the DARE
// paper's (deltas mostly within 0.002 on weights of typical size 0.02, relative norms of a
// few percent) below them, and models after continued pre-training above. They are tested
// on generated families only, not on published models.
//
// # Not done
//
// Run reads each input once; it does not compare tensors that are absent from the base, and
// it does not give exact quantiles (that would need a second pass).
package analyze
