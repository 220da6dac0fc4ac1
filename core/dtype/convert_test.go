package dtype

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
)

// format describes a binary floating-point target format for the reference rounding.
type format struct {
	d     DType
	frac  int // stored significand bits
	emin  int // exponent of the smallest normal
	emax  int // exponent of the largest finite
	quiet uint16
}

var (
	f16  = format{F16, 10, -14, 15, 0x0200}
	bf16 = format{BF16, 7, -126, 127, 0x0040}
)

func (f format) bias() int       { return -f.emin + 1 }
func (f format) expMask() uint16 { return uint16((1<<(15-f.frac))-1) << f.frac }

// refRound returns the bits of x rounded to f, ties to even, computed in float64
// independently of the package: it finds the two neighbouring representable values
// around |x| (the grid is extended past the largest finite value, whose next step is
// Inf) and picks the nearer, or the one with an even significand at a tie.
// x must not be NaN.
func (f format) refRound(x float32) uint16 {
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	a := math.Abs(float64(x))
	if math.IsInf(a, 1) {
		return sign | f.expMask()
	}
	if a == 0 {
		return sign
	}
	_, e := math.Frexp(a) // a = m * 2^e, m in [0.5, 1)
	e--
	if e < f.emin {
		e = f.emin
	}
	ulp := math.Ldexp(1, e-f.frac)
	k := math.Floor(a / ulp)
	lo, hi := k*ulp, (k+1)*ulp
	switch dlo, dhi := a-lo, hi-a; {
	case dhi < dlo, dhi == dlo && math.Mod(k, 2) == 1:
		k++
	}
	r := k * ulp
	if r >= math.Ldexp(1, f.emax+1) {
		return sign | f.expMask()
	}
	if r < math.Ldexp(1, f.emin) {
		return sign | uint16(r/math.Ldexp(1, f.emin-f.frac))
	}
	_, e = math.Frexp(r)
	e--
	m := r/math.Ldexp(1, e-f.frac) - math.Ldexp(1, f.frac)
	return sign | uint16(e+f.bias())<<f.frac | uint16(m)
}

// wantNaN returns the bits a NaN x must encode to: same sign, leading payload bits, quiet bit set.
func (f format) wantNaN(x float32) uint16 {
	u := math.Float32bits(x)
	return uint16(u>>31)<<15 | f.expMask() | uint16((u&0x7fffff)>>(23-f.frac)) | f.quiet
}

// checkEncode encodes xs with Encode and compares every element with the reference.
func (f format) checkEncode(t *testing.T, xs []float32, buf []byte) {
	t.Helper()
	buf = buf[:2*len(xs)]
	Encode(buf, xs, f.d)
	fails := 0
	for i, x := range xs {
		got := binary.LittleEndian.Uint16(buf[2*i:])
		var want uint16
		if x != x {
			want = f.wantNaN(x)
		} else {
			want = f.refRound(x)
		}
		if got != want {
			t.Errorf("Encode(%v, bits %#08x) to %v = %#04x, want %#04x", x, math.Float32bits(x), f.d, got, want)
			if fails++; fails > 10 {
				t.FailNow()
			}
		}
		if f.d == BF16 {
			if s := Float32ToBF16(x); s != got {
				t.Errorf("Float32ToBF16(bits %#08x) = %#04x, Encode gives %#04x", math.Float32bits(x), s, got)
			}
		}
	}
}

// f16Ref decodes binary16 bits with the IEEE 754 formula in float64, independently
// of x448/float16: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
// A NaN becomes the float32 NaN with the same sign and payload, quiet bit set.
func f16Ref(h uint16) uint32 {
	s, e, m := h>>15, int(h>>10&0x1f), int(h&0x3ff)
	if e == 0x1f && m != 0 {
		return uint32(s)<<31 | 0x7fc00000 | uint32(m)<<13
	}
	var v float64
	switch e {
	case 0x1f:
		v = math.Inf(1)
	case 0:
		v = math.Ldexp(float64(m), -24)
	default:
		v = math.Ldexp(float64(1024+m), e-25)
	}
	if s == 1 {
		v = -v
	}
	return math.Float32bits(float32(v))
}

// bf16Ref decodes bfloat16 bits: they are the upper half of a float32, exactly.
func bf16Ref(h uint16) uint32 { return math.Float32bits(math.Float32frombits(uint32(h) << 16)) }

// digest returns the hex SHA-256 of the little-endian uint32 words ws.
func digest(ws []uint32) string {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The SHA-256 of the float32 bits of all 65,536 patterns, in order, as little-endian
// words. Computed once from f16Ref and bf16Ref (which the test also checks) and kept
// here so a change to either decoder, or to the references, is caught.
const (
	f16Digest  = "b636c5716ff84d972782faf02d0194cb8951526bea4cc487082feb47b1860ddf"
	bf16Digest = "9207d7eb28680a098c73dbe536d1ff7b94311dc417b9a385e0af6660683e93ca"
)

// TestDecodeAllPatterns decodes every F16 and BF16 bit pattern, compares the float32
// bits with the independent reference and a fixed digest, and re-encodes each one:
// non-NaNs come back bit for bit, NaNs stay NaN with their sign and payload, quieted.
func TestDecodeAllPatterns(t *testing.T) {
	tests := []struct {
		f      format
		ref    func(uint16) uint32
		digest string
	}{
		{f16, f16Ref, f16Digest},
		{bf16, bf16Ref, bf16Digest},
	}
	for _, tt := range tests {
		t.Run(tt.f.d.String(), func(t *testing.T) {
			src := make([]byte, 2<<16)
			for h := range 1 << 16 {
				binary.LittleEndian.PutUint16(src[2*h:], uint16(h))
			}
			dst := make([]float32, 1<<16)
			Decode(dst, src, tt.f.d)
			got := make([]uint32, 1<<16)
			want := make([]uint32, 1<<16)
			for h := range 1 << 16 {
				got[h] = math.Float32bits(dst[h])
				want[h] = tt.ref(uint16(h))
				if got[h] != want[h] {
					t.Errorf("Decode(%#04x) as %v = bits %#08x, want %#08x", h, tt.f.d, got[h], want[h])
				}
				if tt.f.d == BF16 && math.Float32bits(BF16ToFloat32(uint16(h))) != got[h] {
					t.Errorf("BF16ToFloat32(%#04x) differs from Decode", h)
				}
			}
			if d := digest(want); d != tt.digest {
				t.Errorf("digest of reference decoding = %s, want %s", d, tt.digest)
			}
			if d := digest(got); d != tt.digest {
				t.Errorf("digest of Decode = %s, want %s", d, tt.digest)
			}

			back := make([]byte, len(src))
			Encode(back, dst, tt.f.d)
			// A length that is no multiple of the kernels' unrolled step converts the
			// same, the tail included.
			part := make([]float32, 1<<16-5)
			Decode(part, src[:2*len(part)], tt.f.d)
			partBack := make([]byte, 2*len(part))
			Encode(partBack, part, tt.f.d)
			for h := range part {
				if math.Float32bits(part[h]) != got[h] {
					t.Fatalf("Decode of %d elements: element %d = bits %#08x, want %#08x", len(part), h, math.Float32bits(part[h]), got[h])
				}
			}
			if !bytes.Equal(partBack, back[:len(partBack)]) {
				t.Errorf("Encode of %d elements differs from Encode of %d", len(part), len(dst))
			}
			for h := range 1 << 16 {
				hb := uint16(h)
				g := binary.LittleEndian.Uint16(back[2*h:])
				isNaN := hb&tt.f.expMask() == tt.f.expMask() && hb&^(0x8000|tt.f.expMask()) != 0
				if isNaN {
					if dst[h] == dst[h] || math.Signbit(float64(dst[h])) != (hb&0x8000 != 0) {
						t.Errorf("Decode(%#04x) as %v = %v, want NaN with sign %d", hb, tt.f.d, dst[h], hb>>15)
					}
					if g != hb|tt.f.quiet {
						t.Errorf("Encode(Decode(%#04x)) as %v = %#04x, want %#04x (quieted NaN)", hb, tt.f.d, g, hb|tt.f.quiet)
					}
				} else if g != hb {
					t.Errorf("Encode(Decode(%#04x)) as %v = %#04x, want itself", hb, tt.f.d, g)
				}
			}
		})
	}
}

// randomCount is the number of random float32 values per target in TestEncodeRandom.
// Measured: about 1.5 s per target natively and 4 s under GOOS=js (node), so the
// full 10^7 runs on both.
const randomCount = 10_000_000

// TestEncodeRandom rounds random float32 values to F16 and BF16 with Encode and
// compares each with the float64 reference: half are uniform random bit patterns
// (every sign, exponent and NaN), half are uniform (in bits) inside a random interval
// between two neighbouring values of the target, so every binade is hit, with the
// subnormals and the interval from the largest finite value to Inf.
func TestEncodeRandom(t *testing.T) {
	for _, f := range []format{f16, bf16} {
		t.Run(f.d.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(f.d)))
			const batch = 1 << 14
			xs := make([]float32, batch)
			buf := make([]byte, 2*batch)
			for n := randomCount; n > 0; n -= batch {
				for i := range xs {
					if i%2 == 0 {
						xs[i] = math.Float32frombits(r.Uint32())
						continue
					}
					h := uint16(r.IntN(int(f.expMask()))) // finite positive pattern
					lo := math.Float32bits(decode1(f.d, h))
					hi := math.Float32bits(decode1(f.d, h+1))
					xs[i] = math.Float32frombits(lo + uint32(r.Int64N(int64(hi-lo)+1)) | r.Uint32()&0x80000000)
				}
				f.checkEncode(t, xs, buf)
			}
		})
	}
}

// decode1 decodes one pattern h of d with the bulk kernel.
func decode1(d DType, h uint16) float32 {
	var dst [1]float32
	Decode(dst[:], binary.LittleEndian.AppendUint16(nil, h), d)
	return dst[0]
}

// TestEncodeEdges checks, for every finite pattern of the target, the value itself,
// the exact midpoint to the next value (ties: even below for even patterns, odd below
// for odd ones), and the float32 just below and above that midpoint; the last finite
// pattern's midpoint is the overflow threshold. All midpoints are float32 values.
func TestEncodeEdges(t *testing.T) {
	for _, f := range []format{f16, bf16} {
		t.Run(f.d.String(), func(t *testing.T) {
			var xs []float32
			for h := uint16(0); h < f.expMask(); h++ {
				v := float64(decode1(f.d, h))
				next := float64(decode1(f.d, h+1)) // Inf after the largest finite value
				if h+1 == f.expMask() {
					next = math.Ldexp(1, f.emax+1)
				}
				mid := float32((v + next) / 2) // exact: one more bit than the target
				if float64(mid) != (v+next)/2 {
					t.Fatalf("midpoint after %#04x is not a float32", h)
				}
				for _, x := range []float32{float32(v), mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1)))} {
					xs = append(xs, x, -x)
				}
			}
			xs = append(xs, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -float32(math.NaN()),
				math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, math.Float32frombits(0x7f800001), math.Float32frombits(0xffbfffff))
			f.checkEncode(t, xs, make([]byte, 2*len(xs)))
		})
	}
}

// TestEncodeKnown pins single cases by value (IEEE 754 binary16 and bfloat16 bit layouts).
func TestEncodeKnown(t *testing.T) {
	tests := []struct {
		d    DType
		x    float32
		want uint16
	}{
		{F16, 1, 0x3c00},
		{F16, 1 + 0x1p-11, 0x3c00},   // halfway, even below: down
		{F16, 1 + 3*0x1p-11, 0x3c02}, // halfway, odd below: up
		{F16, 65504, 0x7bff},         // largest finite
		{F16, 65519.996, 0x7bff},     // just below the overflow threshold
		{F16, 65520, 0x7c00},         // threshold: halfway to 2^16, odd below: Inf
		{F16, -65520, 0xfc00},
		{F16, 0x1p-24, 0x0001},   // smallest subnormal
		{F16, 0x1p-25, 0x0000},   // halfway to it: even (zero)
		{F16, -0x1p-25, 0x8000},  // keeps the sign of zero
		{F16, 0x1.8p-24, 0x0002}, // halfway between 1 and 2 ulps: even
		{F16, float32(math.Copysign(0, -1)), 0x8000},
		{BF16, 1, 0x3f80},
		{BF16, 1 + 0x1p-8, 0x3f80},
		{BF16, 1 + 3*0x1p-8, 0x3f82},
		{BF16, math.Float32frombits(0x7f7f7fff), 0x7f7f}, // just below the overflow threshold
		{BF16, math.Float32frombits(0x7f7f8000), 0x7f80}, // threshold: Inf
		{BF16, math.MaxFloat32, 0x7f80},
		{BF16, math.Float32frombits(0x00008000), 0x0000}, // halfway to the smallest subnormal: zero
		{BF16, math.Float32frombits(0x00018000), 0x0002},
		{BF16, math.Float32frombits(0xff800000), 0xff80},
		{BF16, math.Float32frombits(0x7f800001), 0x7fc0}, // signalling NaN, payload below the kept bits: quiet NaN
		{BF16, math.Float32frombits(0xff810000), 0xffc1}, // keeps sign and leading payload
	}
	for _, tt := range tests {
		var b [2]byte
		Encode(b[:], []float32{tt.x}, tt.d)
		if got := binary.LittleEndian.Uint16(b[:]); got != tt.want {
			t.Errorf("Encode(%v) to %v = %#04x, want %#04x", tt.x, tt.d, got, tt.want)
		}
	}
}

// TestDecodeBytes checks the little-endian byte order and F64 rounding.
func TestDecodeBytes(t *testing.T) {
	tests := []struct {
		d    DType
		src  []byte
		want uint32 // float32 bits
	}{
		{F32, []byte{0x00, 0x00, 0x80, 0x3f}, 0x3f800000},
		{F16, []byte{0x00, 0x3c}, 0x3f800000},
		{BF16, []byte{0x80, 0x3f}, 0x3f800000},
		{F64, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, 0x3f800000},
		{F64, le64(1 + 0x1p-24), 0x3f800000},               // tie, even below
		{F64, le64(1 + 3*0x1p-24), 0x3f800002},             // tie, odd below
		{F64, le64(1 + 0x1p-24 + 0x1p-40), 0x3f800001},     // above the tie
		{F64, le64(math.MaxFloat32 + 0x1p103), 0x7f800000}, // overflow threshold: Inf
		{F64, le64(math.MaxFloat32 + 0x1p103 - 0x1p80), 0x7f7fffff},
		{F64, le64(-1e300), 0xff800000},
		{F64, le64(1e-300), 0},
		{F64, le64(math.Copysign(0, -1)), 0x80000000},
		{F64, le64(0x1p-149), 0x00000001},
	}
	for _, tt := range tests {
		dst := make([]float32, 1)
		Decode(dst, tt.src, tt.d)
		if got := math.Float32bits(dst[0]); got != tt.want {
			t.Errorf("Decode(% x) as %v = %#08x, want %#08x", tt.src, tt.d, got, tt.want)
		}
	}
	dst := make([]float32, 1)
	Decode(dst, le64(math.NaN()), F64)
	if dst[0] == dst[0] {
		t.Errorf("Decode(NaN) as F64 = %v, want NaN", dst[0])
	}
}

func le64(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }

// TestWideRoundTrip checks that random float32 bit patterns survive F32 and F64 exactly
// (F64: NaNs stay NaN with their sign).
func TestWideRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	xs := make([]float32, 1<<16)
	for i := range xs {
		xs[i] = math.Float32frombits(r.Uint32())
	}
	for _, d := range []DType{F32, F64} {
		buf := make([]byte, len(xs)*d.Size())
		Encode(buf, xs, d)
		back := make([]float32, len(xs))
		Decode(back, buf, d)
		for i, x := range xs {
			g, w := math.Float32bits(back[i]), math.Float32bits(x)
			if x != x && d == F64 {
				if back[i] == back[i] || g>>31 != w>>31 {
					t.Errorf("Decode(Encode(bits %#08x)) via %v = %#08x, want a NaN of the same sign", w, d, g)
				}
			} else if g != w {
				t.Errorf("Decode(Encode(bits %#08x)) via %v = %#08x, want itself", w, d, g)
			}
		}
	}
}

// TestPanics checks the documented programmer errors: non-float dtypes and length mismatches.
func TestPanics(t *testing.T) {
	tests := []struct {
		name   string
		d      DType
		nbytes int
		n      int
	}{
		{"short src", F32, 7, 2},
		{"long src", F16, 6, 2},
		{"BF16 odd", BF16, 3, 1},
		{"F64 elements", F64, 8, 2},
		{"I8", I8, 2, 2},
		{"Invalid", Invalid, 0, 0},
		{"F8", F8_E4M3, 1, 1},
		{"out of range", 200, 4, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !panics(func() { Decode(make([]float32, tt.n), make([]byte, tt.nbytes), tt.d) }) {
				t.Errorf("Decode(%d floats, %d bytes, %v) did not panic", tt.n, tt.nbytes, tt.d)
			}
			if !panics(func() { Encode(make([]byte, tt.nbytes), make([]float32, tt.n), tt.d) }) {
				t.Errorf("Encode(%d bytes, %d floats, %v) did not panic", tt.nbytes, tt.n, tt.d)
			}
		})
	}
	for _, d := range []DType{F64, F32, F16, BF16} {
		if panics(func() { Decode(nil, nil, d); Encode(nil, nil, d) }) {
			t.Errorf("Decode/Encode of no elements as %v panicked", d)
		}
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

func TestNoAlloc(t *testing.T) {
	for _, d := range []DType{F64, F32, F16, BF16} {
		xs := make([]float32, 1024)
		buf := make([]byte, len(xs)*d.Size())
		if n := testing.AllocsPerRun(10, func() { Decode(xs, buf, d); Encode(buf, xs, d) }); n != 0 {
			t.Errorf("Decode+Encode as %v: %v allocations, want 0", d, n)
		}
	}
}

// TestEncodeAllFloat32 rounds all 2^32 float32 values to F16 and BF16 and compares
// with the reference. It takes minutes, so it runs only with FREELUNCH_LONG=1.
func TestEncodeAllFloat32(t *testing.T) {
	if os.Getenv("FREELUNCH_LONG") != "1" {
		t.Skip("set FREELUNCH_LONG=1 to check all 2^32 float32 values")
	}
	for _, f := range []format{f16, bf16} {
		t.Run(f.d.String(), func(t *testing.T) {
			workers := runtime.GOMAXPROCS(0)
			var wg sync.WaitGroup
			var mu sync.Mutex
			bad := 0
			for w := range workers {
				wg.Go(func() {
					const batch = 1 << 16
					xs := make([]float32, batch)
					buf := make([]byte, 2*batch)
					for hi := uint32(w); hi < 1<<16; hi += uint32(workers) {
						for i := range xs {
							xs[i] = math.Float32frombits(hi<<16 | uint32(i))
						}
						Encode(buf, xs, f.d)
						for i, x := range xs {
							var want uint16
							if x != x {
								want = f.wantNaN(x)
							} else {
								want = f.refRound(x)
							}
							if got := binary.LittleEndian.Uint16(buf[2*i:]); got != want {
								mu.Lock()
								if bad++; bad <= 10 {
									t.Errorf("Encode(bits %#08x) to %v = %#04x, want %#04x", math.Float32bits(x), f.d, got, want)
								}
								mu.Unlock()
							}
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

const benchN = 1 << 20

func BenchmarkDecode(b *testing.B) {
	for _, d := range []DType{F64, F32, F16, BF16} {
		b.Run(d.String(), func(b *testing.B) {
			dst := make([]float32, benchN)
			src := make([]byte, benchN*d.Size())
			r := rand.New(rand.NewPCG(3, 3))
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				Decode(dst, src, d)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, d := range []DType{F64, F32, F16, BF16} {
		b.Run(d.String(), func(b *testing.B) {
			src := make([]float32, benchN)
			dst := make([]byte, benchN*d.Size())
			r := rand.New(rand.NewPCG(4, 4))
			for i := range src {
				src[i] = float32(r.NormFloat64())
			}
			b.SetBytes(int64(len(dst)))
			b.ReportAllocs()
			for b.Loop() {
				Encode(dst, src, d)
			}
		})
	}
}

// DecodeFinite decodes as Decode does and never calls a NaN or Inf finite, at any position
// of any float dtype, in the unrolled loops, the word loop or the tail; it calls finite
// values finite for BF16 at any length and for F16 and F32 in whole 64-bit words.
func TestDecodeFinite(t *testing.T) {
	for _, d := range []DType{BF16, F16, F32, F64} {
		for n := 1; n <= 40; n++ {
			check := func(x []float32, wantFinite bool, what string) {
				t.Helper()
				raw := make([]byte, n*d.Size())
				Encode(raw, x, d)
				got, want := make([]float32, n), make([]float32, n)
				fin := DecodeFinite(got, raw, d)
				Decode(want, raw, d)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s n %d %s: element %d decodes to %v, Decode gives %v", d, n, what, i, got[i], want[i])
					}
				}
				if fin != wantFinite {
					t.Errorf("%s n %d %s: DecodeFinite = %v, want %v", d, n, what, fin, wantFinite)
				}
			}
			for pos := 0; pos < n; pos++ {
				for _, bad := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
					x := make([]float32, n)
					for i := range x {
						x[i] = float32(i) - 1e4 // large finite values, every exponent bit but one set in some
					}
					x[pos] = bad
					check(x, false, fmt.Sprintf("%v at %d", bad, pos))
				}
			}
			fin := make([]float32, n)
			for i := range fin {
				fin[i] = -65504 + float32(i) // the largest finite F16 magnitudes
			}
			check(fin, d == BF16 || (d != F64 && n*d.Size()%8 == 0), "finite")
		}
	}
}
