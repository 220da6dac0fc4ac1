//go:build goexperiment.simd && amd64

package merge

import (
	"math/rand/v2"
	"simd/archsimd"
	"slices"
	"testing"

	"freelunch/internal/vectest"
)

// TestDense2AVX2 checks dense2AVX2 against dense2Go bit for bit, with and without the
// normalize divisor, at lengths that leave every tail.
func TestDense2AVX2(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	b, x0, x1 := vectest.Deltas(1<<16, 1)
	for _, p := range [][4]float64{{0.6, 0.4, 1, 1}, {0.6, 0.4, 1.0000001, 0.7}, {-1.5, 3, 1.5, 1}, {-0.6, -0.4, 1, 1}, {1e300, 1e-300, 3, 1e10}} {
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 1 << 16} {
			want, got := make([]float32, n), make([]float32, n)
			dense2Go(want, b[:n], x0[:n], x1[:n], p[0], p[1], p[2], p[3])
			dense2AVX2(got, b[:n], x0[:n], x1[:n], p[0], p[1], p[2], p[3])
			if !vectest.SameBits(want, got) {
				t.Fatalf("weights %g %g, divisor %g, lambda %g, n=%d: dense2AVX2 differs from dense2Go", p[0], p[1], p[2], p[3], n)
			}
		}
	}
}

// TestConsensus2AVX2 checks consensus2AVX2 against consensus2 (NaN for NaN, else bit for
// bit) for TIES and DARE-TIES kernels with normalize on and off, DARE's rescale, an L1
// factor, weights that sum to zero, random keep masks, and lengths that leave every tail.
func TestConsensus2AVX2(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	const n = 1 << 14
	b, x0, x1 := vectest.Deltas(n, 2)
	r := rand.New(rand.NewPCG(5, 5))
	m0, m1 := make([]uint64, n), make([]uint64, n)
	for i := range n {
		m0[i], m1[i] = -uint64(r.IntN(3)&1), -uint64(r.IntN(4)&1^1)
	}
	cases := []struct {
		method        string
		global        Params
		w0, w1, scale float64
	}{
		{"ties", nil, 0.6, 0.4, 1},
		{"ties", Params{"normalize": false, "lambda": 0.7}, 0.6, 0.4, 1},
		{"ties", nil, 0.5, -0.5, 1},
		{"ties", nil, 1, 1, 1.75},
		{"ties", Params{"normalize": false}, -0.6, -0.4, 1},
		{"dare_ties", nil, 0.6, 0.4, 1},
		{"dare_ties", Params{"normalize": false}, 1e-3, 3, 1},
		{"dare_ties", Params{"rescale": false}, 0.6, 0.4, 1},
		{"dare_ties", nil, 0.6, 0.4, 0.3},
	}
	for _, c := range cases {
		m := method(t, c.method)
		k := m.New(tensor(t, m, n, c.global, Params{"weight": c.w0, "density": 0.3}, Params{"weight": c.w1, "density": 0.7})).(*tvKernel)
		k.scale[0] = c.scale
		for _, l := range []int{0, 1, 7, 8, 9, 15, 16, 17, 250, n} {
			want, got := make([]float32, l), make([]float32, l)
			k.consensus2(want, b[:l], x0[:l], x1[:l], m0[:l], m1[:l])
			for _, avx512 := range []bool{false, true} { // the AVX2 loop, then consensus2AVX512
				if avx512 && !archsimd.X86.AVX512() {
					continue
				}
				useAVX512 = avx512
				k.consensus2AVX2(got, b[:l], x0[:l], x1[:l], m0[:l], m1[:l])
				useAVX512 = archsimd.X86.AVX512()
				for i := range want {
					if !vectest.SameBits(want[i:i+1], got[i:i+1]) {
						t.Fatalf("%s %v, weights %g %g, L1 factor %g, n=%d, AVX-512 %v: element %d (base %g, models %g %g, masks %x %x) is %g, want %g",
							c.method, c.global, c.w0, c.w1, c.scale, l, avx512, i, b[i], x0[i], x1[i], m0[i], m1[i], got[i], want[i])
					}
				}
			}
		}
	}
}

// TestDareMaskAVX2 checks dareMaskAVX2 against dareMask: streams of several seeds, models
// and tensors, offsets up to 2^40, thresholds from none kept to all kept, every tail length.
func TestDareMaskAVX2(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(9, 9))
	thrs := []uint64{0, 1, threshold(0.1), threshold(0.5), threshold(0.9), 1<<53 - 1, 1 << 53}
	for c := range 200 {
		s := NewStream(r.Uint64(), r.IntN(5), "t")
		off := r.Int64N(1 << 40)
		if c%4 == 0 {
			off = int64(r.IntN(10))
		}
		thr := thrs[c%len(thrs)]
		n := c % 41
		if c%10 == 0 {
			n = block
		}
		want, got := make([]uint64, n), make([]uint64, n)
		dareMask(want, s, off, thr)
		dareMaskAVX2(got, s, off, thr) // dareMaskAVX512 where the CPU has AVX-512
		if !slices.Equal(want, got) {
			t.Fatalf("offset %d, threshold %d, n=%d: dareMaskAVX2 differs from dareMask", off, thr, n)
		}
		if useAVX512 {
			clear(got)
			useAVX512 = false // the AVX2 loop on the same CPU
			dareMaskAVX2(got, s, off, thr)
			useAVX512 = true
			if !slices.Equal(want, got) {
				t.Fatalf("offset %d, threshold %d, n=%d: dareMaskAVX2's AVX2 loop differs from dareMask", off, thr, n)
			}
		}
	}
	if !useAVX512 {
		t.Log("no AVX-512: dareMaskAVX512 not run")
	}
}

// TestSelectorMaskAVX2 checks maskAVX2 against maskGo for the largest and the smallest
// keys, each form of the tie rule with the cut before, inside and after the chunk, and
// deltas with equal keys, zeros and NaNs.
func TestSelectorMaskAVX2(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	b, x0, _ := vectest.Deltas(1<<12, 4)
	r := rand.New(rand.NewPCG(6, 6))
	for c := range 300 {
		n := c % 45
		if c%9 == 0 {
			n = block
		}
		lo := r.IntN(len(b) - n)
		x, bb := slices.Clone(x0[lo:lo+n]), slices.Clone(b[lo:lo+n])
		off := int64(r.IntN(1 << 20))
		s := &selector{m: 1, n: 2, t: magKey(x0[r.IntN(len(b))] - b[r.IntN(len(b))])}
		if n > 0 && c%3 != 2 {
			i := r.IntN(n)
			s.t = magKey(x[i] - bb[i]) // a key the chunk holds, a third of its elements
			for range n / 3 {
				j := r.IntN(n)
				x[j], bb[j] = x[i], bb[i]
			}
		}
		if c%3 == 0 {
			s.flip = 1<<32 - 1
		}
		s.tx = s.t ^ s.flip
		cut := off + int64(r.IntN(n+10)) - 5
		switch c % 4 {
		case 1:
			s.sgn, s.c = 1, cut
		case 2:
			s.sgn, s.c = -1, -cut-1
		case 3:
			s.sgn, s.c = 1, off-int64(r.IntN(1<<30)) // before the chunk, far
		}
		want, got := make([]uint64, n), make([]uint64, n)
		s.maskGo(want, off, x, bb)
		s.maskAVX2(got, off, x, bb)
		if !slices.Equal(want, got) {
			t.Fatalf("case %d (flip %x, t %x, sgn %d, c %d, off %d, n %d): maskAVX2 differs from maskGo", c, s.flip, s.t, s.sgn, s.c, off, n)
		}
	}
}

// TestCountWindowAVX2 checks countWindowAVX2 against countWindowGo: the same counts and
// the same window elements in the same order, for windows of no bucket, one, several and
// all, around the deltas' common buckets and the ±2^-7 ties, at lengths that leave every
// tail of the blocks and of the eight-element groups.
func TestCountWindowAVX2(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	const n = 1 << 12
	b, x0, _ := vectest.Deltas(n, 8)
	common := magKey(0.0002) >> 16
	tie := magKey(1.0/128) >> 16
	windows := [][2]uint32{{1 << 16, 0}, {common, 0}, {common - 20, 40}, {tie, 0}, {tie - 1, 1}, {0, 0}, {0, 0xffff}, {0x7f80, 0x7f}}
	for _, w := range windows {
		for _, l := range []int{0, 1, 7, 8, 9, 511, 512, 513, 1000, 1024, n - 3} {
			off := int64(l) << 20
			wantC, gotC := new([1 << 16]uint32), new([1 << 16]uint32)
			want := countWindowGo(wantC, nil, off, x0[:l], b[:l], w[0], w[1])
			got := countWindowAVX2(gotC, []uint64{}, off, x0[:l], b[:l], w[0], w[1])
			if *wantC != *gotC {
				t.Fatalf("window %#x+%d, n=%d: counts differ", w[0], w[1], l)
			}
			if !slices.Equal(want, got) {
				t.Fatalf("window %#x+%d, n=%d: window elements %x, want %x", w[0], w[1], l, got, want)
			}
			if w == windows[2] && l == n-3 && len(want) < 20 {
				t.Fatalf("window %#x+%d holds only %d elements: the test does not exercise it", w[0], w[1], len(want))
			}
		}
	}
}
