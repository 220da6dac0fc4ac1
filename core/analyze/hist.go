package analyze

import (
	"math"
)

// histBins is the number of bins of a Histogram: one per value of the top 16 bits of a
// non-negative float32 (8 exponent bits and the 7 leading mantissa bits, the bits of a
// bfloat16), which covers every finite |δ| and +Inf.
const histBins = 1 << 15

// A Histogram counts |δ| values on a log scale: bin i holds the values whose float32 bits,
// shifted right by 16, equal i, so each power of two is split into 128 equal bins (relative
// width at most 2^-7). Bin 0 holds exact zeros only; non-zero values below 2^-133 (whose
// top bits are 0) are counted in bin 1.
type Histogram struct {
	counts [histBins]int64
	n      int64
	lo, hi int // bins touched since the last reset: [lo, hi)
}

// binOf returns the bin of the non-negative value a.
func binOf(a float64) int {
	bits := math.Float32bits(float32(a))
	i := int(bits >> 16)
	if i == 0 && bits != 0 {
		i = 1
	}
	return i
}

// binRange returns the values bin i covers: [lo, hi). Bin 0 is [0, 0].
func binRange(i int) (lo, hi float64) {
	switch i {
	case 0:
		return 0, 0
	case 1:
		return 0, float64(math.Float32frombits(2 << 16))
	}
	return float64(math.Float32frombits(uint32(i) << 16)), float64(math.Float32frombits(uint32(i+1) << 16))
}

func (h *Histogram) add(i int) {
	h.counts[i]++
	h.n++
	if h.n == 1 {
		h.lo, h.hi = i, i+1
		return
	}
	h.lo = min(h.lo, i)
	h.hi = max(h.hi, i+1)
}

// addAll adds the counts of o to h.
func (h *Histogram) addAll(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i := o.lo; i < o.hi; i++ {
		h.counts[i] += o.counts[i]
	}
	if h.n == 0 {
		h.lo, h.hi = o.lo, o.hi
	} else {
		h.lo = min(h.lo, o.lo)
		h.hi = max(h.hi, o.hi)
	}
	h.n += o.n
}

func (h *Histogram) reset() {
	if h.n > 0 {
		clear(h.counts[h.lo:h.hi])
	}
	h.n, h.lo, h.hi = 0, 0, 0
}

// Count returns the number of values counted.
func (h *Histogram) Count() int64 { return h.n }

// quantile returns the estimate of the order statistic of rank k (1-based) of the counted
// values: the midpoint of the bin holding it, 0 in bin 0, and at most max (the exact
// largest value).
func (h *Histogram) quantile(k int64, maxAbs float64) float64 {
	if h.n == 0 {
		return math.NaN()
	}
	var c int64
	for i := h.lo; i < h.hi; i++ {
		c += h.counts[i]
		if c >= k {
			lo, hi := binRange(i)
			if math.IsInf(lo, 1) { // |δ| past the float32 range: only the largest is known
				return maxAbs
			}
			return min((lo+hi)/2, maxAbs)
		}
	}
	return maxAbs // not reached: k <= n
}

// A Bin is a range of |δ| and how many values fell in it.
type Bin struct {
	Lo, Hi float64 // values in [Lo, Hi); Lo = Hi = 0 for exact zeros
	Count  int64
}

// Bins returns the non-empty bins of h, merged to perOctave bins per power of two (a power
// of two between 1 and 128; other values are rounded down to one, and values above 128 are
// 128), in increasing order. Exact zeros come first as the bin [0, 0]. The browser draws
// its log-scale histogram from these.
func (h *Histogram) Bins(perOctave int) []Bin {
	shift := 7
	for p := 128; p > 1 && p > perOctave; p /= 2 {
		shift--
	}
	shift = 7 - shift // bins of the fine histogram merged: 2^shift
	var out []Bin
	if h.n == 0 {
		return out
	}
	for i := h.lo; i < h.hi; {
		if h.counts[i] == 0 {
			i++
			continue
		}
		if i == 0 {
			out = append(out, Bin{Count: h.counts[0]})
			i++
			continue
		}
		start := i >> shift << shift
		end := start + 1<<shift
		start = max(start, 1)
		var c int64
		for j := start; j < end && j < h.hi; j++ {
			c += h.counts[j]
		}
		lo, _ := binRange(start)
		_, hi := binRange(end - 1)
		out = append(out, Bin{Lo: lo, Hi: hi, Count: c})
		i = end
	}
	return out
}
