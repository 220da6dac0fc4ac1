package merge

import (
	"math"
	"sync"
)

// A selector finds, exactly and in bounded memory, the set of the m elements of a tensor
// that come first in an order over magnitudes, given one element at a time in index order
// (design.md §5: magnitude top-k and the outlier windows of breadcrumbs).
//
// Keys are the bits of |x| as a float32 with the sign cleared; for non-negative floats (and
// NaN, which sorts above +Inf) the integer order is the numeric order. Three passes over the
// tensor at most: a histogram of the high 16 bits finds the bucket holding the m-th key, a
// histogram of the low 16 bits inside that bucket finds the key T itself, and, only when
// some but not all elements equal to T belong to the set, a third pass finds the index at
// which ties stop. The state is one 65,536-bucket histogram.
type selector struct {
	m       int64 // elements to select
	n       int64
	largest bool // select the largest keys (else the smallest)
	// lowFirst: among keys equal to T, those of lower index are selected first.
	lowFirst bool

	hist  *[1 << 16]int64
	hi    uint32 // high 16 bits of T
	t     uint32 // the boundary key T
	eq    int64  // elements whose key is T
	take  int64  // how many of them are selected
	cut   int64  // index bound for ties (see in)
	seen  int64
	stage int // 0: high histogram, 1: low histogram, 2: ties, 3: done
}

var histPool = sync.Pool{New: func() any { return new([1 << 16]int64) }}

func newSelector(m, n int64, largest, lowFirst bool) *selector {
	s := &selector{m: max(0, min(m, n)), n: n, largest: largest, lowFirst: lowFirst, stage: 3}
	if s.m > 0 && s.m < n {
		s.stage = 0
		s.hist = histPool.Get().(*[1 << 16]int64)
		*s.hist = [1 << 16]int64{}
	}
	return s
}

func magKey(x float32) uint32 { return math.Float32bits(x) &^ (1 << 31) }

// done reports whether the selector needs no more passes.
func (s *selector) done() bool { return s.stage == 3 }

// observe feeds the elements [off, off+len(x)) to the current pass.
func (s *selector) observe(off int64, x []float32) {
	switch s.stage {
	case 0:
		h := s.hist
		for _, v := range x {
			h[magKey(v)>>16]++
		}
	case 1:
		h := s.hist
		for _, v := range x {
			if k := magKey(v); k>>16 == s.hi {
				h[k&0xffff]++
			}
		}
	case 2:
		for i, v := range x {
			if magKey(v) != s.t {
				continue
			}
			s.seen++
			// lowFirst: the take-th equal element is the last selected; otherwise the
			// (eq-take)-th equal element is the last one not selected.
			if (s.lowFirst && s.seen == s.take) || (!s.lowFirst && s.seen == s.eq-s.take) {
				s.cut = off + int64(i)
				s.stage = 3 // nothing more to learn; later chunks are ignored
				return
			}
		}
	}
}

// endPass is called after every element went through observe in the current pass.
func (s *selector) endPass() {
	switch s.stage {
	case 0:
		b, before := s.walk(s.m)
		s.hi = b
		s.m -= before // rank within the bucket
		*s.hist = [1 << 16]int64{}
		s.stage = 1
	case 1:
		b, before := s.walk(s.m)
		s.t = s.hi<<16 | b
		s.eq = s.hist[b]
		s.take = s.m - before
		histPool.Put(s.hist)
		s.hist = nil
		s.stage = 3
		if s.take < s.eq { // take ≥ 1 by construction of walk
			s.stage = 2
		}
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
