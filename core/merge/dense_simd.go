//go:build goexperiment.simd && amd64

package merge

import "simd/archsimd"

// The two-model loops in AVX2, four float64 lanes at a time: the same operations in the
// same order as the portable loops, each rounded as they round it (no fused multiply-add;
// the float32↔float64 conversions round to nearest even, as Go's do), and the portable
// loops finish the last few elements. Scalar float operations (legacy SSE in Go) must stay
// out of these loops and come only after ClearAVXUpperBits: with the vector registers'
// upper halves in use, each cost about a hundred cycles on the development machine.

// useAVX2 reports whether Merge runs the loops below (dense_portable.go: never).
var useAVX2 = archsimd.X86.AVX2()

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
