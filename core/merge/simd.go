//go:build goexperiment.simd && amd64

package merge

import (
	"simd/archsimd"
	"unsafe"
)

// The two-model loops (four float64 lanes at a time), DARE's draws, the top-k mask and the
// selection's histogram pass in AVX2: the same operations in the same order as the
// portable loops, each rounded as they round it (no fused multiply-add; the
// float32↔float64 conversions round to nearest even, as Go's do), and the portable loops
// finish the last few elements; where the CPU has AVX-512, DARE's draws and the sign
// consensus run 512-bit twins of their loops. Scalar float operations (legacy SSE in Go)
// must stay out of these loops and come only after ClearAVXUpperBits: with the vector
// registers' upper halves in use, each cost about a hundred cycles on the development
// machine.

// useAVX2 reports whether Merge runs the loops below (portable.go: never).
var useAVX2 = archsimd.X86.AVX2()

// useAVX512 reports whether the loops that have a 512-bit twin run it: where the CPU has
// AVX-512 (archsimd.X86.AVX512: F, CD, BW, DQ and VL; DQ brings the 64-bit multiply).
var useAVX512 = archsimd.X86.AVX512()

// dense2AVX2 is dense2Go, eight elements per iteration.
func dense2AVX2(dst, b, x0, x1 []float32, f0, f1, div, lambda float64) {
	n := len(b)
	dst, x0, x1 = dst[:n], x0[:n], x1[:n]
	divide := div != 1
	vf0, vf1 := archsimd.BroadcastFloat64x4(f0), archsimd.BroadcastFloat64x4(f1)
	vdiv, vl := archsimd.BroadcastFloat64x4(div), archsimd.BroadcastFloat64x4(lambda)
	var zero archsimd.Float64x4
	// four elements at b, x0, x1 into d
	four := func(d, b, x0, x1 *[4]float32, divide bool) {
		bb := archsimd.LoadFloat32x4(b).ConvertToFloat64()
		s := zero.Add(archsimd.LoadFloat32x4(x0).ConvertToFloat64().Sub(bb).Mul(vf0))
		s = s.Add(archsimd.LoadFloat32x4(x1).ConvertToFloat64().Sub(bb).Mul(vf1))
		if divide {
			s = s.Div(vdiv)
		}
		bb.Add(vl.Mul(s)).ConvertToFloat32().Store(d)
	}
	eight := func(i int, divide bool) {
		d, b, x0, x1 := (*[8]float32)(dst[i:]), (*[8]float32)(b[i:]), (*[8]float32)(x0[i:]), (*[8]float32)(x1[i:])
		four((*[4]float32)(d[:4]), (*[4]float32)(b[:4]), (*[4]float32)(x0[:4]), (*[4]float32)(x1[:4]), divide)
		four((*[4]float32)(d[4:]), (*[4]float32)(b[4:]), (*[4]float32)(x0[4:]), (*[4]float32)(x1[4:]), divide)
	}
	i := 0
	if divide { // two loops, so that the loop tests no float64
		for ; i+8 <= n; i += 8 {
			eight(i, true)
		}
	} else {
		for ; i+8 <= n; i += 8 {
			eight(i, false)
		}
	}
	archsimd.ClearAVXUpperBits()
	dense2Go(dst[i:], b[i:], x0[i:], x1[i:], f0, f1, div, lambda)
}

// consensus2AVX2 is consensus2, four elements at a time; the normalize divisor is
// computed as New computes the table wdiv.
func (k *tvKernel) consensus2AVX2(dst, b, x0, x1 []float32, m0, m1 []uint64) {
	if useAVX512 {
		k.consensus2AVX512(dst, b, x0, x1, m0, m1)
		return
	}
	n := len(b)
	dst, x0, x1, m0, m1 = dst[:n], x0[:n], x1[:n], m0[:n], m1[:n]
	div0, div1 := k.divisor(0), k.divisor(1)
	divide, scale := div0 != 1 || div1 != 1, k.scale[0] != 1 || k.scale[1] != 1
	normalize := k.normalize
	bc := archsimd.BroadcastFloat64x4
	vf0, vf1, vmul0, vmul1 := bc(k.w[0]), bc(k.w[1]), bc(k.scale[0]), bc(k.scale[1])
	vdiv0, vdiv1, vl, one := bc(div0), bc(div1), bc(k.lambda), bc(1)
	sign := archsimd.BroadcastUint64x4(1 << 63)
	var zero archsimd.Float64x4
	four := func(d, b, x0, x1 *[4]float32, m0, m1 *[4]uint64) {
		bb := archsimd.LoadFloat32x4(b).ConvertToFloat64()
		d0 := archsimd.LoadFloat32x4(x0).ConvertToFloat64().Sub(bb)
		d1 := archsimd.LoadFloat32x4(x1).ConvertToFloat64().Sub(bb)
		if divide {
			d0, d1 = d0.Div(vdiv0), d1.Div(vdiv1)
		}
		if scale {
			d0, d1 = d0.Mul(vmul0), d1.Mul(vmul1)
		}
		v0 := d0.Mul(vf0).AsUint64x4().And(archsimd.LoadUint64x4(m0)).AsFloat64x4()
		v1 := d1.Mul(vf1).AsUint64x4().And(archsimd.LoadUint64x4(m1)).AsFloat64x4()
		s := v0.Add(v1).AsUint64x4().And(sign).Or(one.AsUint64x4()).AsFloat64x4()
		a0, a1 := v0.Mul(s).Greater(zero), v1.Mul(s).Greater(zero)
		sum := v0.Masked(a0).Add(v1.Masked(a1))
		if normalize {
			ws := zero.Add(vf0.Masked(a0)).Add(vf1.Masked(a1))
			sum = sum.Div(one.Merge(ws, ws.Equal(zero)))
		}
		bb.Add(vl.Mul(sum)).ConvertToFloat32().Store(d)
	}
	i := 0
	for ; i+8 <= n; i += 8 {
		d, b, x0, x1 := (*[8]float32)(dst[i:]), (*[8]float32)(b[i:]), (*[8]float32)(x0[i:]), (*[8]float32)(x1[i:])
		m0, m1 := (*[8]uint64)(m0[i:]), (*[8]uint64)(m1[i:])
		four((*[4]float32)(d[:4]), (*[4]float32)(b[:4]), (*[4]float32)(x0[:4]), (*[4]float32)(x1[:4]), (*[4]uint64)(m0[:4]), (*[4]uint64)(m1[:4]))
		four((*[4]float32)(d[4:]), (*[4]float32)(b[4:]), (*[4]float32)(x0[4:]), (*[4]float32)(x1[4:]), (*[4]uint64)(m0[4:]), (*[4]uint64)(m1[4:]))
	}
	archsimd.ClearAVXUpperBits()
	k.consensus2(dst[i:], b[i:], x0[i:], x1[i:], m0[i:], m1[i:])
}

// consensus2AVX512 is consensus2AVX2 eight elements at a time in 512-bit registers.
func (k *tvKernel) consensus2AVX512(dst, b, x0, x1 []float32, m0, m1 []uint64) {
	n := len(b)
	dst, x0, x1, m0, m1 = dst[:n], x0[:n], x1[:n], m0[:n], m1[:n]
	div0, div1 := k.divisor(0), k.divisor(1)
	divide, scale := div0 != 1 || div1 != 1, k.scale[0] != 1 || k.scale[1] != 1
	normalize := k.normalize
	bc := archsimd.BroadcastFloat64x8
	vf0, vf1, vmul0, vmul1 := bc(k.w[0]), bc(k.w[1]), bc(k.scale[0]), bc(k.scale[1])
	vdiv0, vdiv1, vl, one := bc(div0), bc(div1), bc(k.lambda), bc(1)
	sign := archsimd.BroadcastUint64x8(1 << 63)
	var zero archsimd.Float64x8
	i := 0
	for ; i+8 <= n; i += 8 {
		bb := archsimd.LoadFloat32x8((*[8]float32)(b[i:])).ConvertToFloat64()
		d0 := archsimd.LoadFloat32x8((*[8]float32)(x0[i:])).ConvertToFloat64().Sub(bb)
		d1 := archsimd.LoadFloat32x8((*[8]float32)(x1[i:])).ConvertToFloat64().Sub(bb)
		if divide {
			d0, d1 = d0.Div(vdiv0), d1.Div(vdiv1)
		}
		if scale {
			d0, d1 = d0.Mul(vmul0), d1.Mul(vmul1)
		}
		v0 := d0.Mul(vf0).AsUint64x8().And(archsimd.LoadUint64x8((*[8]uint64)(m0[i:]))).AsFloat64x8()
		v1 := d1.Mul(vf1).AsUint64x8().And(archsimd.LoadUint64x8((*[8]uint64)(m1[i:]))).AsFloat64x8()
		s := v0.Add(v1).AsUint64x8().And(sign).Or(one.AsUint64x8()).AsFloat64x8()
		a0, a1 := v0.Mul(s).Greater(zero), v1.Mul(s).Greater(zero)
		sum := v0.Masked(a0).Add(v1.Masked(a1))
		if normalize {
			ws := zero.Add(vf0.Masked(a0)).Add(vf1.Masked(a1))
			sum = sum.Div(one.Merge(ws, ws.Equal(zero)))
		}
		bb.Add(vl.Mul(sum)).ConvertToFloat32().Store((*[8]float32)(dst[i:]))
	}
	archsimd.ClearAVXUpperBits()
	k.consensus2(dst[i:], b[i:], x0[i:], x1[i:], m0[i:], m1[i:])
}

// dareMaskAVX2 is dareMask, four draws at a time: mix64 in 64-bit lanes, each 64-bit
// multiply made of three 32×32→64-bit ones (AVX2 has no 64-bit multiply), and the lanes'
// stream positions advanced by additions of 4·gamma64 (mod 2^64, as the products wrap).
// Where the CPU has AVX-512, dareMaskAVX512 does it.
func dareMaskAVX2(m []uint64, s Stream, off int64, thr uint64) {
	if useAVX512 {
		dareMaskAVX512(m, s, off, thr)
		return
	}
	bc := archsimd.BroadcastUint64x4
	s11, s27, s30, s31, s32 := bc(11), bc(27), bc(30), bc(31), bc(32)
	c1lo, c1hi := bc(0x1ce4e5b9).AsUint32x8(), bc(0xbf58476d).AsUint32x8()
	c2lo, c2hi := bc(0x133111eb).AsUint32x8(), bc(0x94d049bb).AsUint32x8()
	vthr := archsimd.BroadcastInt64x4(int64(thr)) // below 2^54: compared as signed
	g := uint64(gamma64)
	z0 := s.key + uint64(off+1)*g
	z := archsimd.LoadUint64x4(&[4]uint64{z0, z0 + g, z0 + 2*g, z0 + 3*g})
	step := bc(4 * g)
	// mul returns x·c mod 2^64 for c's 32-bit halves lo and hi.
	mul := func(x archsimd.Uint64x4, lo, hi archsimd.Uint32x8) archsimd.Uint64x4 {
		cross := x.ShiftRight(s32).AsUint32x8().MulEvenWiden(lo).Add(x.AsUint32x8().MulEvenWiden(hi))
		return x.AsUint32x8().MulEvenWiden(lo).Add(cross.ShiftLeft(s32))
	}
	i := 0
	for ; i+4 <= len(m); i += 4 {
		x := z.Xor(z.ShiftRight(s30))
		x = mul(x, c1lo, c1hi)
		x = x.Xor(x.ShiftRight(s27))
		x = mul(x, c2lo, c2hi)
		x = x.Xor(x.ShiftRight(s31)).ShiftRight(s11)
		vthr.Greater(x.AsInt64x4()).ToInt64x4().AsUint64x4().Store((*[4]uint64)(m[i:]))
		z = z.Add(step)
	}
	archsimd.ClearAVXUpperBits()
	dareMask(m[i:], s, off+int64(i), thr)
}

// dareMaskAVX512 is dareMaskAVX2 eight draws at a time in 512-bit registers, each 64-bit
// multiply one VPMULLQ: 0.22 against 0.69 ns per draw (a throwaway benchmark of 256-draw
// blocks on the development VM's Zen 5 host; four lanes with VPMULLQ took 0.34 ns).
func dareMaskAVX512(m []uint64, s Stream, off int64, thr uint64) {
	bc := archsimd.BroadcastUint64x8
	s11, s27, s30, s31 := bc(11), bc(27), bc(30), bc(31)
	c1, c2 := bc(0xbf58476d1ce4e5b9), bc(0x94d049bb133111eb)
	vthr := archsimd.BroadcastInt64x8(int64(thr)) // below 2^54: compared as signed
	g := uint64(gamma64)
	z0 := s.key + uint64(off+1)*g
	z := archsimd.LoadUint64x8(&[8]uint64{z0, z0 + g, z0 + 2*g, z0 + 3*g, z0 + 4*g, z0 + 5*g, z0 + 6*g, z0 + 7*g})
	step := bc(8 * g)
	i := 0
	for ; i+8 <= len(m); i += 8 {
		x := z.Xor(z.ShiftRight(s30)).Mul(c1)
		x = x.Xor(x.ShiftRight(s27)).Mul(c2)
		x = x.Xor(x.ShiftRight(s31)).ShiftRight(s11)
		vthr.Greater(x.AsInt64x8()).ToInt64x8().AsUint64x8().Store((*[8]uint64)(m[i:]))
		z = z.Add(step)
	}
	archsimd.ClearAVXUpperBits()
	dareMask(m[i:], s, off+int64(i), thr)
}

// maskAVX2 is maskGo, eight elements at a time, the tie rule as a bound on the chunk
// index (tieBound).
func (s *selector) maskAVX2(m []uint64, off int64, x, b []float32) {
	n := len(m)
	x, b = x[:n], b[:n]
	d, inv := s.tieBound(off, n)
	const top = 1 << 31 // keys compared unsigned: flip the top bit, compare signed
	flip := archsimd.BroadcastUint32x8(s.flip ^ top)
	tx := archsimd.BroadcastInt32x8(int32(s.tx ^ top))
	t := archsimd.BroadcastUint32x8(s.t)
	abs := archsimd.BroadcastUint32x8(1<<31 - 1)
	vd, vinv := archsimd.BroadcastInt32x8(int32(d)), archsimd.BroadcastInt32x8(inv)
	idx := archsimd.LoadInt32x8(&[8]int32{0, 1, 2, 3, 4, 5, 6, 7})
	eight := archsimd.BroadcastInt32x8(8)
	i := 0
	for ; i+8 <= n; i += 8 {
		k := archsimd.LoadFloat32x8((*[8]float32)(x[i:])).Sub(archsimd.LoadFloat32x8((*[8]float32)(b[i:]))).AsUint32x8().And(abs)
		above := k.Xor(flip).AsInt32x8().Greater(tx).ToInt32x8()
		tie := idx.Greater(vd).ToInt32x8().Xor(vinv)
		r := above.Or(k.Equal(t).ToInt32x8().And(tie))
		mi := (*[8]uint64)(m[i:])
		r.GetLo().ExtendToInt64().AsUint64x4().Store((*[4]uint64)(mi[:4]))
		r.GetHi().ExtendToInt64().AsUint64x4().Store((*[4]uint64)(mi[4:]))
		idx = idx.Add(eight)
	}
	archsimd.ClearAVXUpperBits()
	s.maskGo(m[i:], off+int64(i), x[i:], b[i:])
}

// countWindowAVX2 is countWindowGo in blocks: keysAVX2 computes a block's keys and window
// tests in vector registers, then scalar integer code counts the buckets from the stored
// keys and appends the window's elements. (Histogram increments do not vectorize. On
// chunks that fit in L2 this took 1.2–1.4 ns per element against 2.2–2.5 for the fused
// loop, in a throwaway benchmark; without a window, count's plain loop is faster.)
func countWindowAVX2(c *[1 << 16]uint32, cand []uint64, off int64, x, b []float32, lo, width uint32) []uint64 {
	n := len(x)
	b = b[:n]
	var key [512]uint32
	var out [len(key) / 8]uint8
	i := 0
	for ; i+len(key) <= n; i += len(key) {
		keysAVX2(&key, &out, x[i:i+len(key)], b[i:i+len(key)], lo, width)
		cand = countBlock(c, cand, off+int64(i), &key, &out)
	}
	return countWindowGo(c, cand, off+int64(i), x[i:], b[i:], lo, width)
}

// countWindowAVX2BF16 is countWindowAVX2 for BF16 bytes.
func countWindowAVX2BF16(c *[1 << 16]uint32, cand []uint64, off int64, x, b []byte, lo, width uint32) []uint64 {
	n := len(x) / 2
	xs, bs := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(x))), n), unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), n)
	var key [512]uint32
	var out [len(key) / 8]uint8
	i := 0
	for ; i+len(key) <= n; i += len(key) {
		keysBF16AVX2(&key, &out, xs[i:i+len(key)], bs[i:i+len(key)], lo, width)
		cand = countBlock(c, cand, off+int64(i), &key, &out)
	}
	return countWindowBF16Go(c, cand, off+int64(i), x[2*i:], b[2*i:], lo, width)
}

// countBlock counts a block's keys in c and appends to cand the elements whose bit of out
// is clear, the block starting at element off.
func countBlock(c *[1 << 16]uint32, cand []uint64, off int64, key *[512]uint32, out *[64]uint8) []uint64 {
	for _, k := range (*[len(key) / 2]uint64)(unsafe.Pointer(key)) { // two keys per load
		c[uint32(k)>>16]++
		c[k>>48]++
	}
	for g, o := range out {
		if o == 0xff {
			continue
		}
		for l := range 8 {
			if o&(1<<l) == 0 {
				j := g*8 + l
				cand = append(cand, uint64(off+int64(j))<<32|uint64(key[j&(len(key)-1)]))
			}
		}
	}
	return cand
}

// keysAVX2 sets key[i] to the key of x[i]-b[i] and bit l of out[g] when element 8g+l's
// bucket is outside the window [lo, lo+width].
func keysAVX2(key *[512]uint32, out *[64]uint8, x, b []float32, lo, width uint32) {
	x, b = x[:len(key)], b[:len(key)]
	const top = 1 << 31 // bucket offsets compared unsigned: flip the top bit, compare signed
	abs := archsimd.BroadcastUint32x8(1<<31 - 1)
	sixteen := archsimd.BroadcastUint32x8(16)
	vlo := archsimd.BroadcastUint32x8(lo)
	vw := archsimd.BroadcastInt32x8(int32(width ^ top))
	vtop := archsimd.BroadcastUint32x8(top)
	for g := range out {
		i := 8 * g
		k := archsimd.LoadFloat32x8((*[8]float32)(x[i:])).Sub(archsimd.LoadFloat32x8((*[8]float32)(b[i:]))).AsUint32x8().And(abs)
		k.Store((*[8]uint32)(key[i:]))
		out[g] = k.ShiftRight(sixteen).Sub(vlo).Xor(vtop).AsInt32x8().Greater(vw).ToBits()
	}
	archsimd.ClearAVXUpperBits()
}

// keysBF16AVX2 is keysAVX2 for BF16 values. (The two share no helper: a struct of the
// constants passed to one was kept on the stack and copied there with legacy SSE moves,
// the trap the file's header describes.)
func keysBF16AVX2(key *[512]uint32, out *[64]uint8, x, b []uint16, lo, width uint32) {
	x, b = x[:len(key)], b[:len(key)]
	const top = 1 << 31
	abs := archsimd.BroadcastUint32x8(1<<31 - 1)
	sixteen := archsimd.BroadcastUint32x8(16)
	vlo := archsimd.BroadcastUint32x8(lo)
	vw := archsimd.BroadcastInt32x8(int32(width ^ top))
	vtop := archsimd.BroadcastUint32x8(top)
	for g := range out {
		i := 8 * g
		xv := archsimd.LoadUint16x8((*[8]uint16)(x[i:])).ExtendToUint32().ShiftLeft(sixteen).AsFloat32x8()
		bv := archsimd.LoadUint16x8((*[8]uint16)(b[i:])).ExtendToUint32().ShiftLeft(sixteen).AsFloat32x8()
		k := xv.Sub(bv).AsUint32x8().And(abs)
		k.Store((*[8]uint32)(key[i:]))
		out[g] = k.ShiftRight(sixteen).Sub(vlo).Xor(vtop).AsInt32x8().Greater(vw).ToBits()
	}
	archsimd.ClearAVXUpperBits()
}
