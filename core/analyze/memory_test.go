package analyze

import (
	"context"
	"math"
	"runtime"
	"testing"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// bigFamily returns a MemFS with a base and two models of one F32 tensor of n elements.
func bigFamily(t testing.TB, n int) safetensors.MemFS {
	fsys := safetensors.MemFS{}
	g := lcg(1)
	vals := make([][]float32, 3)
	for m := range vals {
		vals[m] = make([]float32, n)
	}
	for i := range n {
		b := float32(0.02 * (g.next() - 0.5))
		vals[0][i] = b
		vals[1][i] = b + float32(0.001*(g.next()-0.5))
		vals[2][i] = b + float32(0.001*(g.next()-0.5))
	}
	for m, name := range []string{"b", "m1", "m2"} {
		writeFile(t, fsys, name+".safetensors", []tdata{{name: "w", dt: dtype.F32, shape: []int64{int64(n)}, vals: vals[m]}})
	}
	return fsys
}

// TestBoundedMemory checks that Run allocates in proportion to the chunk size, not to the
// tensor: 2M-element tensors analysed in chunks of 4096 elements.
func TestBoundedMemory(t *testing.T) {
	const n = 1 << 21 // 8 MiB per model
	ms := open(t, bigFamily(t, n), "b.safetensors", "m1.safetensors", "m2.safetensors")
	var r *Report
	got := allocated(func() {
		var err error
		r, err = Run(context.Background(), ms[0], ms[1:], Options{ChunkSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
	})
	// Four histograms (two per model, 256 KiB each) and chunk buffers of ~100 KiB.
	t.Logf("allocated %d bytes", got)
	if limit := uint64(2 << 20); got > limit {
		t.Errorf("Run over %d-element tensors allocated %d bytes, want under %d", n, got, limit)
	}
	if r.Models[0].Overall.N != n {
		t.Errorf("N = %d, want %d", r.Models[0].Overall.N, n)
	}
}

// TestBins checks the coarse histogram the page draws: counts add up, every bin is a power
// of two split perOctave ways, and each value falls in its bin.
func TestBins(t *testing.T) {
	var h Histogram
	vals := []float64{0, 0, 1e-45, 3e-39, 0.001, 0.0011, 0.002, 0.5, 0.75, 1, 3}
	for _, v := range vals {
		h.add(binOf(v))
	}
	for _, per := range []int{1, 2, 8, 128, 1000} {
		bins := h.Bins(per)
		var total int64
		for i, b := range bins {
			total += b.Count
			if i > 0 && b.Lo < bins[i-1].Hi {
				t.Errorf("Bins(%d): bin %d [%g, %g) overlaps the previous one", per, i, b.Lo, b.Hi)
			}
			if b.Lo > 0 && b.Lo >= 0x1p-126 {
				e := math.Floor(math.Log2(b.Lo))
				width := math.Exp2(e) / float64(min(per, 128))
				if math.Abs((b.Hi-b.Lo)-width) > 1e-12*width {
					t.Errorf("Bins(%d): bin [%g, %g) is not 1/%d of a power of two", per, b.Lo, b.Hi, per)
				}
			}
		}
		if total != int64(len(vals)) {
			t.Errorf("Bins(%d) counts %d values, want %d", per, total, len(vals))
		}
		for _, v := range vals {
			found := false
			for _, b := range bins {
				if (v == 0 && b.Hi == 0) || (v > 0 && b.Lo <= v && v < b.Hi) {
					found = true
				}
			}
			if !found {
				t.Errorf("Bins(%d): %g in no bin: %+v", per, v, bins)
			}
		}
	}
	if b := h.Bins(1); len(b) != 7 || b[0].Count != 2 || b[1].Count != 2 || b[2].Count != 2 {
		// zeros; the two subnormals (float32 exponent 0 is one linear range); 0.001 and
		// 0.0011 share [2^-10, 2^-9); 0.002; 0.5 and 0.75; 1; 3.
		t.Errorf("Bins(1) = %+v, want 7 bins: 2 zeros, 2 subnormals, 2 in [2^-10, 2^-9), ...", b)
	}
}

func BenchmarkRun(b *testing.B) {
	const n = 1 << 20
	ms := open(b, bigFamily(b, n), "b.safetensors", "m1.safetensors", "m2.safetensors")
	b.SetBytes(3 * 4 * n)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Run(context.Background(), ms[0], ms[1:], Options{ChunkSize: 1 << 16}); err != nil {
			b.Fatal(err)
		}
	}
}
