//go:build !(goexperiment.simd && amd64)

package merge

// Without GOEXPERIMENT=simd on amd64 there are no vector loops (simd.go): Merge
// runs the portable ones.
const useAVX2 = false

func dense2AVX2(dst, b, x0, x1 []float32, f0, f1, div, lambda float64) {
	dense2Go(dst, b, x0, x1, f0, f1, div, lambda)
}

func (k *tvKernel) consensus2AVX2(dst, b, x0, x1 []float32, m0, m1 []uint64) {
	k.consensus2(dst, b, x0, x1, m0, m1)
}

func dareMaskAVX2(m []uint64, s Stream, off int64, thr uint64) { dareMask(m, s, off, thr) }

func (s *selector) maskAVX2(m []uint64, off int64, x, b []float32) { s.maskGo(m, off, x, b) }

func countWindowAVX2(c *[1 << 16]uint32, cand []uint64, off int64, x, b []float32, lo, width uint32) []uint64 {
	return countWindowGo(c, cand, off, x, b, lo, width)
}

func countWindowAVX2BF16(c *[1 << 16]uint32, cand []uint64, off int64, x, b []byte, lo, width uint32) []uint64 {
	return countWindowBF16Go(c, cand, off, x, b, lo, width)
}
