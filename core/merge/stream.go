package merge

import "math"

// The random stream of design.md §4. One Stream per (seed, model, tensor name); element i's
// draw depends on nothing else, so masks do not depend on chunking, threads or platform.

const gamma64 = 0x9e3779b97f4a7c15

func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

func fnv1a64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// Stream is the uniform stream of one model's copy of one tensor.
type Stream struct{ key uint64 }

// NewStream returns the stream for seed (--random-seed), model (§4 model number) and the
// tensor's name.
func NewStream(seed uint64, model int, name string) Stream {
	return Stream{mix64(mix64(seed) ^ fnv1a64(name) ^ mix64(uint64(model)+1))}
}

// bits returns the 53 random bits of element i.
func (s Stream) bits(i int64) uint64 { return mix64(s.key+uint64(i+1)*gamma64) >> 11 }

// Uniform returns u(i), a float64 in [0, 1).
func (s Stream) Uniform(i int64) float64 { return float64(s.bits(i)) * (1.0 / (1 << 53)) }

// Keep reports u(i) < p, compared in float64. Scaling both sides by 2^53 is exact, so this
// equals comparing Uniform(i) with p.
func (s Stream) Keep(i int64, p float64) bool { return float64(s.bits(i)) < p*(1<<53) }

// threshold returns the integer form of p for keepBelow: bits(i) < threshold(p) exactly
// when Keep(i, p), since for an integer b and a real P, b < P is b < ⌈P⌉.
func threshold(p float64) uint64 {
	P := p * (1 << 53)
	switch {
	case !(P > 0):
		return 0
	case P >= 1<<53:
		return 1 << 53
	}
	return uint64(math.Ceil(P))
}

// keepBelow is Keep with p given as threshold(p): one integer comparison.
func (s Stream) keepBelow(i int64, thr uint64) bool { return s.bits(i) < thr }

// dareMask sets m[i] to all ones where s keeps element off+i with threshold thr, else to
// zero, without branches on the draws.
func dareMask(m []uint64, s Stream, off int64, thr uint64) {
	for i := range m {
		var keep uint64
		if s.keepBelow(off+int64(i), thr) {
			keep = 1
		}
		m[i] = -keep
	}
}
