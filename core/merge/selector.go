package merge

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// A selector finds, exactly and in bounded memory, the set of the m elements of a tensor
// that come first in an order over magnitudes (design.md §5: magnitude top-k and the
// outlier windows of breadcrumbs).
//
// Keys are the bits of |x| as a float32 with the sign cleared; for non-negative floats (and
// NaN, which sorts above +Inf) the integer order is the numeric order. Two passes over the
// tensor, each in any chunk order and concurrently: a histogram of the high 16 bits finds
// the bucket holding the m-th key; a histogram of the low 16 bits inside that bucket finds
// the key T itself, while the bucket's elements (index and low bits) are kept, when there
// are at most maxCandidates of them, to find where ties with T stop. When some but not all
// elements equal to T belong to the set and the bucket was too large to keep, a third
// pass, in index order, finds the index at which ties stop. The state is one
// 65,536-bucket histogram and the kept bucket.
//
// The first pass usually makes the second needless: the first chunk it sees (whichever a
// worker reaches first) is a sample from which it guesses a window of buckets around the
// m-th key, and from then on it keeps every element whose bucket is in the window (index
// and key). When the histogram's bucket falls in the window and the kept elements stayed
// within the budget, they are that bucket's elements, and the second pass's work is done
// from them; otherwise the second pass runs. Either way the selection is exact.
type selector struct {
	m       int64 // elements to select
	n       int64
	largest bool // select the largest keys (else the smallest)
	// lowFirst: among keys equal to T, those of lower index are selected first.
	lowFirst bool

	// maxCand bounds the boundary bucket's elements kept (maxCandidates unless the
	// kernel shares that budget among several selectors).
	maxCand int64

	mu   sync.Mutex // guards hist, cand and win during the unordered passes
	hist *[1 << 16]int64
	// The first pass's window of buckets [wlo, whi] (whi < wlo: none) and its elements,
	// index<<32 | key; win is nil when none are kept (no window, or past the budget).
	once     sync.Once
	wlo, whi uint32
	win      []uint64
	full     atomic.Bool // win was dropped
	ready    atomic.Bool // once has run: the window is fixed
	cand     []uint64    // stage 1: index<<16 | low 16 bits of the elements in bucket hi; nil when too many
	hi       uint32      // high 16 bits of T
	t        uint32      // the boundary key T
	eq       int64       // elements whose key is T
	take     int64       // how many of them are selected
	cut      int64       // index bound for ties (see in)
	seen     int64
	stage    int // 0: high histogram, 1: low histogram, 2: ties, 3: done

	// The selection as mask computes it, set by finish: an element is selected when
	// key^flip > tx, or when key == t and sgn·index <= c.
	flip, tx uint32
	sgn, c   int64
}

// maxCandidates bounds the elements of the boundary bucket the selectors of one tensor keep
// in their second pass (8 bytes each: 32 MiB). A variable so that tests can force the
// third pass.
var maxCandidates int64 = 1 << 22

var histPool = sync.Pool{New: func() any { return new([1 << 16]int64) }}

// countPool holds the per-chunk histograms that unordered passes add up without the lock.
var countPool = sync.Pool{New: func() any { return new([1 << 16]uint32) }}

// candPool holds the per-chunk lists of boundary-bucket elements.
var candPool = sync.Pool{New: func() any { return new([]uint64) }}

func newSelector(m, n int64, largest, lowFirst bool) *selector {
	s := &selector{m: max(0, min(m, n)), n: n, largest: largest, lowFirst: lowFirst, stage: 3, maxCand: maxCandidates,
		wlo: 1} // no window yet
	if s.m > 0 && s.m < n {
		s.stage = 0
		s.hist = histPool.Get().(*[1 << 16]int64)
		*s.hist = [1 << 16]int64{}
	}
	s.finish()
	return s
}

// finish sets the fields mask reads once the selection is known. Ordering keys by
// key^flip turns "smallest first" into "largest first"; sgn·index <= c is index <= cut
// (lowFirst), index > cut (not lowFirst) or always true (every tie selected).
func (s *selector) finish() {
	if s.stage != 3 || s.m == 0 || s.m == s.n {
		return // mask needs nothing more
	}
	if !s.largest {
		s.flip = 1<<32 - 1
	}
	s.tx = s.t ^ s.flip
	switch {
	case s.take == s.eq:
		s.sgn, s.c = 0, 0
	case s.lowFirst:
		s.sgn, s.c = 1, s.cut
	default:
		s.sgn, s.c = -1, -s.cut-1
	}
}

func magKey(x float32) uint32 { return math.Float32bits(x) &^ (1 << 31) }

// done reports whether the selector needs no more passes.
func (s *selector) done() bool { return s.stage == 3 }

// unordered reports whether the current pass may see chunks in any order, concurrently.
func (s *selector) unordered() bool { return s.stage < 2 }

// smallChunk is the chunk length below which observe counts into the shared histogram
// under the lock instead of clearing and adding a private one.
const smallChunk = 1 << 13

// observe feeds the elements [off, off+len(x)), of values x[i]-b[i] (the delta, rounded to
// float32), to the current pass. In stages 0 and 1 it may run concurrently on different
// chunks.
func (s *selector) observe(off int64, x, b []float32) {
	b = b[:len(x)]
	switch s.stage {
	case 0:
		if len(x) < smallChunk {
			s.once.Do(func() { s.ready.Store(true) }) // too small a sample: no window
			s.mu.Lock()
			for i, v := range x {
				s.hist[magKey(v-b[i])>>16]++
			}
			s.mu.Unlock()
			s.keepWindow(nil, off, x, b)
			return
		}
		c := countPool.Get().(*[1 << 16]uint32)
		for p := 0; p < len(x); {
			*c = [1 << 16]uint32{}
			part := x[p:min(len(x), p+math.MaxInt32)] // counts fit in uint32
			pb := b[p : p+len(part)]
			if s.ready.Load() {
				s.keepWindow(c, off+int64(p), part, pb) // counts too, in the same loop
			} else {
				count(c, part, pb)
				s.once.Do(func() { s.window(c, int64(len(part))); s.ready.Store(true) })
				s.keepWindow(nil, off+int64(p), part, pb)
			}
			p += len(part)
			s.add(c)
		}
		countPool.Put(c)
	case 1:
		cp := candPool.Get().(*[]uint64)
		cand := (*cp)[:0]
		for i, v := range x {
			if k := magKey(v - b[i]); k>>16 == s.hi {
				cand = append(cand, uint64(off+int64(i))<<16|uint64(k&0xffff))
			}
		}
		s.mu.Lock()
		for _, c := range cand {
			s.hist[c&0xffff]++
		}
		if s.cand != nil {
			s.cand = append(s.cand, cand...) // within the capacity reserved by endPass
		}
		s.mu.Unlock()
		*cp = cand
		candPool.Put(cp)
	case 2:
		for i, v := range x {
			if magKey(v-b[i]) != s.t {
				continue
			}
			s.seen++
			if s.seen == s.nth() {
				s.cut = off + int64(i)
				s.stage = 3 // nothing more to learn; later chunks are ignored
				s.finish()
				return
			}
		}
	}
}

// counting reports whether the selector is in its first pass with the window fixed,
// where observeBF16 can take chunks.
func (s *selector) counting() bool { return s.stage == 0 && s.ready.Load() }

// observeBF16 is observe of the first pass once counting, the chunk's model and base
// values given as little-endian BF16 bytes x and b, of at least smallChunk elements.
func (s *selector) observeBF16(off int64, x, b []byte) {
	n := len(x) / 2
	b = b[:2*n]
	c := countPool.Get().(*[1 << 16]uint32)
	for p := 0; p < n; {
		*c = [1 << 16]uint32{}
		e := min(n, p+math.MaxInt32) // counts fit in uint32
		s.keepWindowBF16(c, off+int64(p), x[2*p:2*e], b[2*p:2*e])
		p = e
		s.add(c)
	}
	countPool.Put(c)
}

// nth returns which element equal to T (from 1, in index order) sets the cut: with
// lowFirst, the take-th is the last selected; otherwise the (eq-take)-th is the last one
// not selected.
func (s *selector) nth() int64 {
	if s.lowFirst {
		return s.take
	}
	return s.eq - s.take
}

// window guesses, from the histogram c of a sample of ns elements, the buckets between
// which the m-th key of the tensor falls, and makes room for their elements. The m-th
// key's rank in the sample is about m·ns/n, give or take √ns/2 if the sample is a random
// one; the window spans six √ns either side (chosen, not derived: a miss costs a second
// pass, not exactness; wider windows keep more elements).
func (s *selector) window(c *[1 << 16]uint32, ns int64) {
	s.whi, s.wlo = 0, 1
	if s.n > 1<<32 || s.maxCand <= 0 {
		return // indices do not fit the kept elements' 32 bits, or nothing may be kept
	}
	r := float64(s.m) * float64(ns) / float64(s.n)
	margin := 6 * math.Sqrt(float64(ns))
	// Ranks [lo, hi] of the sample, in selection order; a window reaching either end of
	// the sample reaches that end of the key range, where the tensor may go further.
	lo, hi := int64(r-margin), int64(r+margin+1)
	var acc, in int64
	first := true
	for j := range 1 << 16 {
		b := uint32(j)
		if s.largest {
			b = 1<<16 - 1 - uint32(j)
		}
		acc += int64(c[b])
		if first && (acc >= lo || lo < 1) {
			s.wlo, s.whi, first = b, b, false
		}
		if !first {
			s.wlo, s.whi = min(s.wlo, b), max(s.whi, b)
			in += int64(c[b])
		}
		if acc >= hi && hi <= ns {
			break
		}
	}
	if !first {
		// Room for as many elements as the sample suggests, and a quarter more.
		want := float64(in) * float64(s.n) / float64(ns) * 1.25
		s.win = make([]uint64, 0, int64(min(float64(s.maxCand), want+1024)))
	}
}

// keepWindow adds the elements of the chunk at off whose bucket is in the window to win,
// or drops win when they would pass the budget; with c, it also counts every element's
// bucket in c. The window is fixed once ready is set.
func (s *selector) keepWindow(c *[1 << 16]uint32, off int64, x, b []float32) {
	b = b[:len(x)]
	if !s.keeping() {
		if c != nil {
			count(c, x, b)
		}
		return
	}
	cp := candPool.Get().(*[]uint64)
	cand := (*cp)[:0]
	lo, width := s.wlo, s.whi-s.wlo
	if c != nil {
		cand = countWindow(c, cand, off, x, b, lo, width)
	} else {
		for i, v := range x {
			if k := magKey(v - b[i]); k>>16-lo <= width {
				cand = append(cand, uint64(off+int64(i))<<32|uint64(k))
			}
		}
	}
	s.keep(cand)
	*cp = cand
	candPool.Put(cp)
}

// keeping reports whether the first pass keeps a window's elements.
func (s *selector) keeping() bool { return s.wlo <= s.whi && !s.full.Load() }

// keep adds a chunk's elements in the window to win, or drops win when they would pass
// the budget.
func (s *selector) keep(cand []uint64) {
	s.mu.Lock()
	if s.win != nil {
		if int64(len(s.win)+len(cand)) > s.maxCand {
			s.win = nil
			s.full.Store(true)
		} else {
			s.win = append(s.win, cand...)
		}
	}
	s.mu.Unlock()
}

// keepWindowBF16 is keepWindow, counting too, for BF16 bytes.
func (s *selector) keepWindowBF16(c *[1 << 16]uint32, off int64, x, b []byte) {
	if !s.keeping() {
		countBF16(c, x, b)
		return
	}
	cp := candPool.Get().(*[]uint64)
	*cp = countWindowBF16(c, (*cp)[:0], off, x, b, s.wlo, s.whi-s.wlo)
	s.keep(*cp)
	candPool.Put(cp)
}

// bf16At returns the i-th of the little-endian BF16 values in p as a float32.
func bf16At(p []byte, i int) float32 {
	return math.Float32frombits(uint32(p[2*i])<<16 | uint32(p[2*i+1])<<24)
}

// countBF16 is count for BF16 bytes: countWindowBF16 with a window of no bucket.
func countBF16(c *[1 << 16]uint32, x, b []byte) {
	countWindowBF16(c, nil, 0, x, b, 1<<16, 0)
}

// countWindowBF16 is countWindow for BF16 bytes.
func countWindowBF16(c *[1 << 16]uint32, cand []uint64, off int64, x, b []byte, lo, width uint32) []uint64 {
	switch {
	case useWasmSIMD:
		return countWindowWasmBF16(c, cand, off, x, b, lo, width)
	case useAVX2:
		return countWindowAVX2BF16(c, cand, off, x, b, lo, width)
	}
	return countWindowBF16Go(c, cand, off, x, b, lo, width)
}

func countWindowBF16Go(c *[1 << 16]uint32, cand []uint64, off int64, x, b []byte, lo, width uint32) []uint64 {
	n := len(x) / 2
	b = b[:2*n]
	for i := range n {
		k := magKey(bf16At(x, i) - bf16At(b, i))
		c[k>>16]++
		if k>>16-lo <= width {
			cand = append(cand, uint64(off+int64(i))<<32|uint64(k))
		}
	}
	return cand
}

// count adds each element's bucket to c.
func count(c *[1 << 16]uint32, x, b []float32) {
	if useWasmSIMD { // natively the plain loop is faster than countWindowAVX2 with no window
		countWindowWasm(c, nil, 0, x, b, 1<<16, 0) // a window of no bucket
		return
	}
	b = b[:len(x)]
	for i, v := range x {
		c[magKey(v-b[i])>>16]++
	}
}

// countWindow adds each element's bucket to c and appends to cand, as index<<32 | key,
// the elements of the chunk at off whose bucket is in the window [lo, lo+width].
func countWindow(c *[1 << 16]uint32, cand []uint64, off int64, x, b []float32, lo, width uint32) []uint64 {
	switch {
	case useWasmSIMD:
		return countWindowWasm(c, cand, off, x, b, lo, width)
	case useAVX2:
		return countWindowAVX2(c, cand, off, x, b, lo, width)
	}
	return countWindowGo(c, cand, off, x, b, lo, width)
}

// countWindowGo is countWindow without vector instructions.
func countWindowGo(c *[1 << 16]uint32, cand []uint64, off int64, x, b []float32, lo, width uint32) []uint64 {
	b = b[:len(x)]
	for i, v := range x {
		k := magKey(v - b[i])
		c[k>>16]++
		if k>>16-lo <= width {
			cand = append(cand, uint64(off+int64(i))<<32|uint64(k))
		}
	}
	return cand
}

// add adds a chunk's private histogram to the shared one.
func (s *selector) add(c *[1 << 16]uint32) {
	s.mu.Lock()
	for b, v := range c {
		s.hist[b] += int64(v)
	}
	s.mu.Unlock()
}

// endPass is called after every element went through observe in the current pass.
func (s *selector) endPass() {
	switch s.stage {
	case 0:
		b, before := s.walk(s.m)
		s.hi = b
		s.m -= before // rank within the bucket
		win := s.win
		s.win = nil
		if c := s.hist[b]; c <= s.maxCand && s.n < 1<<48 {
			s.cand = make([]uint64, 0, c)
		}
		*s.hist = [1 << 16]int64{}
		s.stage = 1
		if win != nil && b-s.wlo <= s.whi-s.wlo {
			// The window held bucket b: its kept elements are all of b's, the second
			// pass's candidates and low-bits histogram.
			for _, c := range win {
				if k := uint32(c); k>>16 == b {
					s.hist[k&0xffff]++
					s.cand = append(s.cand, c>>32<<16|uint64(k&0xffff))
				}
			}
			s.endPass()
		}
	case 1:
		b, before := s.walk(s.m)
		s.t = s.hi<<16 | b
		s.eq = s.hist[b]
		s.take = s.m - before
		histPool.Put(s.hist)
		s.hist = nil
		s.stage = 3
		switch {
		case s.take == s.eq: // take ≥ 1 by construction of walk
		case s.cand != nil:
			// The indices of the elements equal to T, in order, give the cut.
			idx := s.cand[:0]
			for _, c := range s.cand {
				if uint32(c&0xffff) == b {
					idx = append(idx, c>>16)
				}
			}
			slices.Sort(idx)
			s.cut = int64(idx[s.nth()-1])
		default:
			s.stage = 2
		}
		s.cand = nil
		s.finish()
	}
}

// walk goes through the histogram in selection order and returns the bucket where the m-th
// selected element falls and how many elements come before that bucket.
func (s *selector) walk(m int64) (uint32, int64) {
	var acc int64
	for j := range 1 << 16 {
		b := j
		if s.largest {
			b = 1<<16 - 1 - j
		}
		if acc+s.hist[b] >= m {
			return uint32(b), acc
		}
		acc += s.hist[b]
	}
	panic("merge: selector histogram holds fewer elements than the tensor") // counts are exact
}

// mask sets m[i] to all ones where element off+i, of value x[i]-b[i] (the delta, rounded
// to float32), is selected and to zero where it is not: in without branches. Valid after
// the last pass; safe for concurrent use.
func (s *selector) mask(m []uint64, off int64, x, b []float32) {
	x, b = x[:len(m)], b[:len(m)]
	switch s.m {
	case 0:
		clear(m)
		return
	case s.n:
		for i := range m {
			m[i] = 1<<64 - 1
		}
		return
	}
	if useAVX2 {
		s.maskAVX2(m, off, x, b)
	} else {
		s.maskGo(m, off, x, b)
	}
}

// tieBound returns the tie rule sgn·(off+i) <= c of the chunk at off, of n elements, as a
// bound on the chunk index i, for vector loops: for the three forms finish gives it, with
// d = cut - off, i <= d (sgn 1), i > d (sgn -1), or always (sgn 0); so tie = (i > d) XOR
// inv, with inv all ones for sgn 1, and d clamped to [-1, n] to fit 32-bit lanes.
func (s *selector) tieBound(off int64, n int) (d int64, inv int32) {
	d = -1
	switch s.sgn {
	case 1:
		d, inv = s.c-off, -1
	case -1:
		d = -s.c - 1 - off
	}
	return max(-1, min(d, int64(n))), inv
}

// maskGo is mask past its special cases.
func (s *selector) maskGo(m []uint64, off int64, x, b []float32) {
	x, b = x[:len(m)], b[:len(m)]
	flip, tx, t, sgn, c := s.flip, s.tx, s.t, s.sgn, s.c
	for i := range m {
		k := magKey(x[i] - b[i])
		var above, eq, tie uint64
		if k^flip > tx {
			above = 1
		}
		if k == t {
			eq = 1
		}
		if sgn*(off+int64(i)) <= c {
			tie = 1
		}
		m[i] = -(above | eq&tie)
	}
}

// in reports whether the element at index i with value x is selected. Valid after the last
// pass; safe for concurrent use.
func (s *selector) in(i int64, x float32) bool {
	switch {
	case s.m == 0:
		return false
	case s.m == s.n:
		return true
	}
	k := magKey(x)
	if k != s.t {
		return (k > s.t) == s.largest
	}
	switch {
	case s.take == s.eq:
		return true
	case s.lowFirst:
		return i <= s.cut
	default:
		return i > s.cut
	}
}
