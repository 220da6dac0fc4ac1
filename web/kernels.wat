;; freelunch's WebAssembly SIMD kernels (issue 6). Go's js/wasm emits no SIMD, so the
;; hottest loops of the page's merges are written here by hand: the BF16 conversions, the
;; two-model task-arithmetic loop, and for the two-model sign-consensus merge (TIES,
;; DARE-TIES) the consensus, DARE's draws and the top-k mask, and the top-k selection's
;; histogram pass. They work on Go's own memory: web/worker.js (and tools/wasm_exec_node.cjs
;; in the Go tests) instantiate this module with the Go instance's exported memory as
;; env.mem and hand its exports to Go as imports (wasm/kernels.go), which core/dtype/wasm.go
;; and core/merge/wasm.go call. Each export takes the address of a parameter block in Go's
;; memory that Go fills before the call. The operations are those of the portable Go loops,
;; in the same order, each rounded as there: results are bit-identical except for which NaN
;; an operation on two NaNs returns. make assembles it into kernels.wasm (tools/kernels.mjs,
;; with npm's wabt).
(module
  (import "env" "mem" (memory 1))

  ;; consensus2 is tvKernel.consensus2 on the first n - n%2 elements. Parameter block:
  ;; 0 dst, 8 b, 16 x0, 24 x1 (float32s), 32 m0, 40 m1 (uint64 masks), 48 n, 56 flags
  ;; (1 divide, 2 scale, 4 normalize), then float64s: 64 w0, 72 w1, 80 div0, 88 div1,
  ;; 96 mul0, 104 mul1, 112 lambda.
  (func (export "consensus2") (param $p i32)
    (local $dst i32) (local $b i32) (local $x0 i32) (local $x1 i32) (local $m0 i32) (local $m1 i32)
    (local $n i32) (local $flags i32) (local $i i32)
    (local $f0 v128) (local $f1 v128) (local $div0 v128) (local $div1 v128) (local $mul0 v128)
    (local $mul1 v128) (local $l v128) (local $one v128) (local $sign v128)
    (local $bb v128) (local $d0 v128) (local $d1 v128) (local $v0 v128) (local $v1 v128)
    (local $s v128) (local $a0 v128) (local $a1 v128) (local $sum v128) (local $ws v128)
    (local.set $dst (i32.load (local.get $p)))
    (local.set $b (i32.load offset=8 (local.get $p)))
    (local.set $x0 (i32.load offset=16 (local.get $p)))
    (local.set $x1 (i32.load offset=24 (local.get $p)))
    (local.set $m0 (i32.load offset=32 (local.get $p)))
    (local.set $m1 (i32.load offset=40 (local.get $p)))
    (local.set $n (i32.load offset=48 (local.get $p)))
    (local.set $flags (i32.load offset=56 (local.get $p)))
    (local.set $f0 (f64x2.splat (f64.load offset=64 (local.get $p))))
    (local.set $f1 (f64x2.splat (f64.load offset=72 (local.get $p))))
    (local.set $div0 (f64x2.splat (f64.load offset=80 (local.get $p))))
    (local.set $div1 (f64x2.splat (f64.load offset=88 (local.get $p))))
    (local.set $mul0 (f64x2.splat (f64.load offset=96 (local.get $p))))
    (local.set $mul1 (f64x2.splat (f64.load offset=104 (local.get $p))))
    (local.set $l (f64x2.splat (f64.load offset=112 (local.get $p))))
    (local.set $one (f64x2.splat (f64.const 1)))
    (local.set $sign (i64x2.splat (i64.const 0x8000000000000000)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 2)) (local.get $n)))
        ;; two elements: base and deltas in float64
        (local.set $bb (f64x2.promote_low_f32x4
          (v128.load64_zero (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $d0 (f64x2.sub (f64x2.promote_low_f32x4
          (v128.load64_zero (i32.add (local.get $x0) (i32.shl (local.get $i) (i32.const 2))))) (local.get $bb)))
        (local.set $d1 (f64x2.sub (f64x2.promote_low_f32x4
          (v128.load64_zero (i32.add (local.get $x1) (i32.shl (local.get $i) (i32.const 2))))) (local.get $bb)))
        (if (i32.and (local.get $flags) (i32.const 1))
          (then
            (local.set $d0 (f64x2.div (local.get $d0) (local.get $div0)))
            (local.set $d1 (f64x2.div (local.get $d1) (local.get $div1)))))
        (if (i32.and (local.get $flags) (i32.const 2))
          (then
            (local.set $d0 (f64x2.mul (local.get $d0) (local.get $mul0)))
            (local.set $d1 (f64x2.mul (local.get $d1) (local.get $mul1)))))
        ;; weighted, masked
        (local.set $v0 (v128.and (f64x2.mul (local.get $d0) (local.get $f0))
          (v128.load (i32.add (local.get $m0) (i32.shl (local.get $i) (i32.const 3))))))
        (local.set $v1 (v128.and (f64x2.mul (local.get $d1) (local.get $f1))
          (v128.load (i32.add (local.get $m1) (i32.shl (local.get $i) (i32.const 3))))))
        ;; the elected sign s = ±1 from the sum's sign bit; agreement: v·s > 0
        (local.set $s (v128.or (v128.and (f64x2.add (local.get $v0) (local.get $v1)) (local.get $sign))
          (local.get $one)))
        (local.set $a0 (f64x2.gt (f64x2.mul (local.get $v0) (local.get $s)) (v128.const i64x2 0 0)))
        (local.set $a1 (f64x2.gt (f64x2.mul (local.get $v1) (local.get $s)) (v128.const i64x2 0 0)))
        (local.set $sum (f64x2.add (v128.and (local.get $v0) (local.get $a0))
          (v128.and (local.get $v1) (local.get $a1))))
        (if (i32.and (local.get $flags) (i32.const 4))
          (then ;; divide by the agreeing weights' sum (as New's table wdiv), or by 1 where it is 0
            (local.set $ws (f64x2.add
              (f64x2.add (v128.const i64x2 0 0) (v128.and (local.get $f0) (local.get $a0)))
              (v128.and (local.get $f1) (local.get $a1))))
            (local.set $sum (f64x2.div (local.get $sum)
              (v128.bitselect (local.get $one) (local.get $ws)
                (f64x2.eq (local.get $ws) (v128.const i64x2 0 0)))))))
        (v128.store64_lane 0 (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2)))
          (f32x4.demote_f64x2_zero
            (f64x2.add (local.get $bb) (f64x2.mul (local.get $l) (local.get $sum)))))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $next))))

  ;; dareMask is core/merge's dareMask on the first n - n%8 elements: m[i] all ones where
  ;; mix64(key + (off+i+1)·gamma64) >> 11 < thr, else zero. Parameter block: 0 m, 8 n,
  ;; 16 off, 24 key, 32 thr (int64s). Eight elements a turn: four in v128 lanes, whose
  ;; i64x2.mul V8 builds from three 32-bit multiplies, and four in scalar registers, whose
  ;; i64.mul is one instruction and runs beside them. A draw took 12-17% less time than
  ;; with two and two a turn, which took about 45% less than v128 lanes alone (Node 20 and
  ;; Chromium 148; BENCHMARKS.md, tenth and twelfth sessions).
  (func (export "dareMask") (param $p i32)
    (local $m i32) (local $n i32) (local $i i32) (local $z0 i64)
    (local $z v128) (local $y v128) (local $x v128) (local $w v128) (local $thr v128) (local $step v128)
    (local $s i64) (local $a i64) (local $b i64) (local $c i64) (local $d i64) (local $t i64)
    (local.set $m (i32.load (local.get $p)))
    (local.set $n (i32.load offset=8 (local.get $p)))
    (local.set $z0 (i64.add (i64.load offset=24 (local.get $p))
      (i64.mul (i64.add (i64.load offset=16 (local.get $p)) (i64.const 1)) (i64.const 0x9e3779b97f4a7c15))))
    ;; elements i and i+1 in $z's lanes, i+2 and i+3 in $y's, i+4 in $s (and i+5 to i+7
    ;; in $s plus one to three times gamma64: the constants below)
    (local.set $z (i64x2.replace_lane 1 (i64x2.splat (local.get $z0))
      (i64.add (local.get $z0) (i64.const 0x9e3779b97f4a7c15))))
    (local.set $y (i64x2.add (local.get $z) (i64x2.splat (i64.const 0x3c6ef372fe94f82a))))
    (local.set $s (i64.add (local.get $z0) (i64.const 0x78dde6e5fd29f054)))
    (local.set $step (i64x2.splat (i64.const 0xf1bbcdcbfa53e0a8))) ;; 8·gamma64
    (local.set $t (i64.load offset=32 (local.get $p)))
    (local.set $thr (i64x2.splat (local.get $t)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 8)) (local.get $n)))
        (local.set $x (v128.xor (local.get $z) (i64x2.shr_u (local.get $z) (i32.const 30))))
        (local.set $w (v128.xor (local.get $y) (i64x2.shr_u (local.get $y) (i32.const 30))))
        (local.set $a (i64.xor (local.get $s) (i64.shr_u (local.get $s) (i64.const 30))))
        (local.set $b (i64.add (local.get $s) (i64.const 0x9e3779b97f4a7c15)))
        (local.set $b (i64.xor (local.get $b) (i64.shr_u (local.get $b) (i64.const 30))))
        (local.set $c (i64.add (local.get $s) (i64.const 0x3c6ef372fe94f82a)))
        (local.set $c (i64.xor (local.get $c) (i64.shr_u (local.get $c) (i64.const 30))))
        (local.set $d (i64.add (local.get $s) (i64.const 0xdaa66d2c7ddf743f)))
        (local.set $d (i64.xor (local.get $d) (i64.shr_u (local.get $d) (i64.const 30))))
        (local.set $x (i64x2.mul (local.get $x) (i64x2.splat (i64.const 0xbf58476d1ce4e5b9))))
        (local.set $w (i64x2.mul (local.get $w) (i64x2.splat (i64.const 0xbf58476d1ce4e5b9))))
        (local.set $a (i64.mul (local.get $a) (i64.const 0xbf58476d1ce4e5b9)))
        (local.set $b (i64.mul (local.get $b) (i64.const 0xbf58476d1ce4e5b9)))
        (local.set $c (i64.mul (local.get $c) (i64.const 0xbf58476d1ce4e5b9)))
        (local.set $d (i64.mul (local.get $d) (i64.const 0xbf58476d1ce4e5b9)))
        (local.set $x (v128.xor (local.get $x) (i64x2.shr_u (local.get $x) (i32.const 27))))
        (local.set $w (v128.xor (local.get $w) (i64x2.shr_u (local.get $w) (i32.const 27))))
        (local.set $a (i64.xor (local.get $a) (i64.shr_u (local.get $a) (i64.const 27))))
        (local.set $b (i64.xor (local.get $b) (i64.shr_u (local.get $b) (i64.const 27))))
        (local.set $c (i64.xor (local.get $c) (i64.shr_u (local.get $c) (i64.const 27))))
        (local.set $d (i64.xor (local.get $d) (i64.shr_u (local.get $d) (i64.const 27))))
        (local.set $x (i64x2.mul (local.get $x) (i64x2.splat (i64.const 0x94d049bb133111eb))))
        (local.set $w (i64x2.mul (local.get $w) (i64x2.splat (i64.const 0x94d049bb133111eb))))
        (local.set $a (i64.mul (local.get $a) (i64.const 0x94d049bb133111eb)))
        (local.set $b (i64.mul (local.get $b) (i64.const 0x94d049bb133111eb)))
        (local.set $c (i64.mul (local.get $c) (i64.const 0x94d049bb133111eb)))
        (local.set $d (i64.mul (local.get $d) (i64.const 0x94d049bb133111eb)))
        (local.set $x (i64x2.shr_u (v128.xor (local.get $x) (i64x2.shr_u (local.get $x) (i32.const 31)))
          (i32.const 11)))
        (local.set $w (i64x2.shr_u (v128.xor (local.get $w) (i64x2.shr_u (local.get $w) (i32.const 31)))
          (i32.const 11)))
        (local.set $a (i64.shr_u (i64.xor (local.get $a) (i64.shr_u (local.get $a) (i64.const 31))) (i64.const 11)))
        (local.set $b (i64.shr_u (i64.xor (local.get $b) (i64.shr_u (local.get $b) (i64.const 31))) (i64.const 11)))
        (local.set $c (i64.shr_u (i64.xor (local.get $c) (i64.shr_u (local.get $c) (i64.const 31))) (i64.const 11)))
        (local.set $d (i64.shr_u (i64.xor (local.get $d) (i64.shr_u (local.get $d) (i64.const 31))) (i64.const 11)))
        ;; all below 2^54: signed compares are exact
        (v128.store (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64x2.lt_s (local.get $x) (local.get $thr)))
        (v128.store offset=16 (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64x2.lt_s (local.get $w) (local.get $thr)))
        (i64.store offset=32 (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64.sub (i64.const 0) (i64.extend_i32_u (i64.lt_s (local.get $a) (local.get $t)))))
        (i64.store offset=40 (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64.sub (i64.const 0) (i64.extend_i32_u (i64.lt_s (local.get $b) (local.get $t)))))
        (i64.store offset=48 (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64.sub (i64.const 0) (i64.extend_i32_u (i64.lt_s (local.get $c) (local.get $t)))))
        (i64.store offset=56 (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64.sub (i64.const 0) (i64.extend_i32_u (i64.lt_s (local.get $d) (local.get $t)))))
        (local.set $z (i64x2.add (local.get $z) (local.get $step)))
        (local.set $y (i64x2.add (local.get $y) (local.get $step)))
        (local.set $s (i64.add (local.get $s) (i64.const 0xf1bbcdcbfa53e0a8)))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $next))))

  ;; topKMask is core/merge's selector.maskGo on the first n - n%4 elements: m[i] all ones
  ;; where element i's key k = |x[i] - b[i]| (float32 bits, sign cleared) is selected: k
  ;; above the boundary key (k^flip > tx, unsigned: compared signed with the top bits
  ;; flipped, which flip and tx come with), or k equal to it (t) and i on the selected side
  ;; of the tie cut ((i > d) XOR inv; see selector.tieBound). Parameter block: 0 m (uint64
  ;; masks), 8 x, 16 b (float32s), 24 n, 32 flip, 40 tx, 48 t, 56 d, 64 inv (int32s).
  (func (export "topKMask") (param $p i32)
    (local $m i32) (local $x i32) (local $b i32) (local $n i32) (local $i i32)
    (local $flip v128) (local $tx v128) (local $t v128) (local $d v128) (local $inv v128)
    (local $idx v128) (local $k v128) (local $r v128)
    (local.set $m (i32.load (local.get $p)))
    (local.set $x (i32.load offset=8 (local.get $p)))
    (local.set $b (i32.load offset=16 (local.get $p)))
    (local.set $n (i32.load offset=24 (local.get $p)))
    (local.set $flip (i32x4.splat (i32.load offset=32 (local.get $p))))
    (local.set $tx (i32x4.splat (i32.load offset=40 (local.get $p))))
    (local.set $t (i32x4.splat (i32.load offset=48 (local.get $p))))
    (local.set $d (i32x4.splat (i32.load offset=56 (local.get $p))))
    (local.set $inv (i32x4.splat (i32.load offset=64 (local.get $p))))
    (local.set $idx (v128.const i32x4 0 1 2 3))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $n)))
        (local.set $k (v128.and
          (f32x4.sub (v128.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2))))
                     (v128.load (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2)))))
          (i32x4.splat (i32.const 0x7fffffff))))
        (local.set $r (v128.or
          (i32x4.gt_s (v128.xor (local.get $k) (local.get $flip)) (local.get $tx))
          (v128.and (i32x4.eq (local.get $k) (local.get $t))
                    (v128.xor (i32x4.gt_s (local.get $idx) (local.get $d)) (local.get $inv)))))
        (v128.store (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64x2.extend_low_i32x4_s (local.get $r)))
        (v128.store offset=16 (i32.add (local.get $m) (i32.shl (local.get $i) (i32.const 3)))
          (i64x2.extend_high_i32x4_s (local.get $r)))
        (local.set $idx (i32x4.add (local.get $idx) (i32x4.splat (i32.const 4))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next))))

  ;; decodeBF16 is core/dtype's decodeBF16Go on the first n - n%8 elements: each value
  ;; shifted into the upper half of a float32. Returns 1 when none is a NaN or ±Inf (its
  ;; exponent bits all ones), else 0. Parameter block: 0 dst (float32s), 8 src (BF16
  ;; bytes), 16 n.
  (func (export "decodeBF16") (param $p i32) (result i32)
    (local $dst i32) (local $src i32) (local $n i32) (local $i i32)
    (local $w v128) (local $a v128) (local $b v128) (local $bad v128) (local $exp v128)
    (local.set $dst (i32.load (local.get $p)))
    (local.set $src (i32.load offset=8 (local.get $p)))
    (local.set $n (i32.load offset=16 (local.get $p)))
    (local.set $exp (i32x4.splat (i32.const 0x7f800000)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 8)) (local.get $n)))
        (local.set $w (v128.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 1)))))
        (local.set $a (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $w)) (i32.const 16)))
        (local.set $b (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $w)) (i32.const 16)))
        (local.set $bad (v128.or (local.get $bad) (v128.or
          (i32x4.eq (v128.and (local.get $a) (local.get $exp)) (local.get $exp))
          (i32x4.eq (v128.and (local.get $b) (local.get $exp)) (local.get $exp)))))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (local.get $a))
        (v128.store offset=16 (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (local.get $b))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $next)))
    (i32.eqz (v128.any_true (local.get $bad))))

  ;; encodeBF16 is core/dtype's encodeBF16Go on the first n - n%8 elements: each float32
  ;; rounded to BF16 to nearest even, a NaN truncated and quieted (see bf16Bits).
  ;; Parameter block: 0 dst (BF16 bytes), 8 src (float32s), 16 n.
  (func (export "encodeBF16") (param $p i32)
    (local $dst i32) (local $src i32) (local $n i32) (local $i i32)
    (local $u v128) (local $lo v128)
    (local.set $dst (i32.load (local.get $p)))
    (local.set $src (i32.load offset=8 (local.get $p)))
    (local.set $n (i32.load offset=16 (local.get $p)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 8)) (local.get $n)))
        (local.set $lo (call $bf16 (v128.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2))))))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 1)))
          (i16x8.narrow_i32x4_u (local.get $lo)
            (call $bf16 (v128.load offset=16 (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $next))))

  ;; $bf16 returns bf16Bits of four float32s' bits u, each in [0, 0xffff].
  (func $bf16 (param $u v128) (result v128)
    (v128.bitselect
      (v128.or (i32x4.shr_u (local.get $u) (i32.const 16)) (i32x4.splat (i32.const 0x40)))
      (i32x4.shr_u
        (i32x4.add (i32x4.add (local.get $u) (i32x4.splat (i32.const 0x7fff)))
          (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (i32x4.splat (i32.const 1))))
        (i32.const 16))
      (i32x4.gt_s (v128.and (local.get $u) (i32x4.splat (i32.const 0x7fffffff)))
        (i32x4.splat (i32.const 0x7f800000)))))

  ;; countWindow is core/merge's selector.keepWindow counting loop on n elements: for each
  ;; element's key k = |x[i] - b[i]| (float32 bits, sign cleared) it adds 1 to the uint32
  ;; c[k >> 16] and, when the bucket k >> 16 is in the window [lo, lo+width], appends
  ;; (off+i) << 32 | k to out. Returns how many it appended. Parameter block: 0 c, 8 x,
  ;; 16 b (float32s, or BF16s when bf16 is 1), 24 n, 32 lo, 40 width, 48 out (uint64s,
  ;; room for n), 56 off, 64 keys (scratch for 512 uint32s), 72 bf16.
  ;; In blocks of 512 elements: keys and window tests four at a time, the buckets stored
  ;; in keys, then the counts from there (incrementing as the keys are computed is several
  ;; times slower: each increment waits on the vector arithmetic for its address).
  (func (export "countWindow") (param $p i32) (result i32)
    (local $c i32) (local $x i32) (local $b i32) (local $n i32) (local $lo i32) (local $width i32)
    (local $out i32) (local $off i64) (local $i i32) (local $k i32) (local $h i32) (local $cnt i32)
    (local $at i32) (local $k4 v128) (local $h4 v128) (local $in i32) (local $keys i32)
    (local $blk i32) (local $e i32) (local $j i32) (local $bf16 i32) (local $kk i64)
    (local.set $c (i32.load (local.get $p)))
    (local.set $x (i32.load offset=8 (local.get $p)))
    (local.set $b (i32.load offset=16 (local.get $p)))
    (local.set $n (i32.load offset=24 (local.get $p)))
    (local.set $lo (i32.load offset=32 (local.get $p)))
    (local.set $width (i32.load offset=40 (local.get $p)))
    (local.set $out (i32.load offset=48 (local.get $p)))
    (local.set $off (i64.load offset=56 (local.get $p)))
    (local.set $keys (i32.load offset=64 (local.get $p)))
    (local.set $bf16 (i32.load offset=72 (local.get $p)))
    (block $blocksDone
      (loop $blocks
        (local.set $e (i32.add (local.get $blk) (i32.const 512)))
        (if (i32.gt_u (local.get $e) (i32.and (local.get $n) (i32.const -4)))
          (then (local.set $e (i32.and (local.get $n) (i32.const -4)))))
        (br_if $blocksDone (i32.ge_u (local.get $blk) (local.get $e)))
        (local.set $i (local.get $blk))
        (block $done4
          (loop $next4
            (br_if $done4 (i32.ge_u (local.get $i) (local.get $e)))
            (if (local.get $bf16)
              (then (local.set $k4 (f32x4.sub
                (i32x4.shl (v128.load16x4_u (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16))
                (i32x4.shl (v128.load16x4_u (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16)))))
              (else (local.set $k4 (f32x4.sub
                (v128.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2))))
                (v128.load (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2))))))))
            (local.set $k4 (v128.and (local.get $k4) (i32x4.splat (i32.const 0x7fffffff))))
            (local.set $h4 (i32x4.shr_u (local.get $k4) (i32.const 16)))
            (v128.store (i32.add (local.get $keys) (i32.shl (i32.sub (local.get $i) (local.get $blk)) (i32.const 2)))
              (local.get $h4))
            (local.set $in (i32x4.bitmask (v128.not (i32x4.gt_u
              (i32x4.sub (local.get $h4) (i32x4.splat (local.get $lo))) (i32x4.splat (local.get $width))))))
            (if (local.get $in)
              (then
                (if (i32.and (local.get $in) (i32.const 1))
                  (then (call $append (local.get $out) (local.get $cnt) (local.get $off) (local.get $i)
                    (i32x4.extract_lane 0 (local.get $k4)))
                    (local.set $cnt (i32.add (local.get $cnt) (i32.const 1)))))
                (if (i32.and (local.get $in) (i32.const 2))
                  (then (call $append (local.get $out) (local.get $cnt) (local.get $off) (i32.add (local.get $i) (i32.const 1))
                    (i32x4.extract_lane 1 (local.get $k4)))
                    (local.set $cnt (i32.add (local.get $cnt) (i32.const 1)))))
                (if (i32.and (local.get $in) (i32.const 4))
                  (then (call $append (local.get $out) (local.get $cnt) (local.get $off) (i32.add (local.get $i) (i32.const 2))
                    (i32x4.extract_lane 2 (local.get $k4)))
                    (local.set $cnt (i32.add (local.get $cnt) (i32.const 1)))))
                (if (i32.and (local.get $in) (i32.const 8))
                  (then (call $append (local.get $out) (local.get $cnt) (local.get $off) (i32.add (local.get $i) (i32.const 3))
                    (i32x4.extract_lane 3 (local.get $k4)))
                    (local.set $cnt (i32.add (local.get $cnt) (i32.const 1)))))))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $next4)))
        (local.set $j (local.get $keys))
        (local.set $e (i32.add (local.get $keys) (i32.shl (i32.sub (local.get $e) (local.get $blk)) (i32.const 2))))
        ;; two buckets per load (a block holds a multiple of four)
        (block $countsDone
          (loop $counts
            (br_if $countsDone (i32.ge_u (local.get $j) (local.get $e)))
            (local.set $kk (i64.load (local.get $j)))
            (local.set $at (i32.add (local.get $c) (i32.shl (i32.wrap_i64 (local.get $kk)) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $at (i32.add (local.get $c)
              (i32.shl (i32.wrap_i64 (i64.shr_u (local.get $kk) (i64.const 32))) (i32.const 2))))
            (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
            (local.set $j (i32.add (local.get $j) (i32.const 8)))
            (br $counts)))
        (local.set $blk (local.get $i))
        (br $blocks)))
  ;; the last n%4 elements one by one
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (local.get $bf16)
          (then (local.set $k (i32.reinterpret_f32 (f32.sub
            (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16)))
            (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16)))))))
          (else (local.set $k (i32.reinterpret_f32 (f32.sub
            (f32.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2))))
            (f32.load (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2)))))))))
        (local.set $k (i32.and (local.get $k) (i32.const 0x7fffffff)))
        (local.set $h (i32.shr_u (local.get $k) (i32.const 16)))
        (local.set $at (i32.add (local.get $c) (i32.shl (local.get $h) (i32.const 2))))
        (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
        (if (i32.le_u (i32.sub (local.get $h) (local.get $lo)) (local.get $width))
          (then
            (call $append (local.get $out) (local.get $cnt) (local.get $off) (local.get $i) (local.get $k))
            (local.set $cnt (i32.add (local.get $cnt) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $cnt))

  ;; append stores (off+i) << 32 | k at out[cnt] (uint64s).
  (func $append (param $out i32) (param $cnt i32) (param $off i64) (param $i i32) (param $k i32)
    (i64.store (i32.add (local.get $out) (i32.shl (local.get $cnt) (i32.const 3)))
      (i64.or (i64.shl (i64.add (local.get $off) (i64.extend_i32_u (local.get $i))) (i64.const 32))
        (i64.extend_i32_u (local.get $k)))))

  ;; dense2 is core/merge's dense2Go on the first n - n%2 elements (task arithmetic with
  ;; two models): b + λ·((0 + (x0 - b)·w0) + (x1 - b)·w1) [/ div]. Parameter block: 0 dst,
  ;; 8 b, 16 x0, 24 x1 (float32s), 32 n, 40 flags (1 divide), then float64s: 48 w0, 56 w1,
  ;; 64 div, 72 lambda.
  (func (export "dense2") (param $p i32)
    (local $dst i32) (local $b i32) (local $x0 i32) (local $x1 i32) (local $n i32) (local $flags i32)
    (local $i i32) (local $f0 v128) (local $f1 v128) (local $div v128) (local $l v128)
    (local $bb v128) (local $s v128)
    (local.set $dst (i32.load (local.get $p)))
    (local.set $b (i32.load offset=8 (local.get $p)))
    (local.set $x0 (i32.load offset=16 (local.get $p)))
    (local.set $x1 (i32.load offset=24 (local.get $p)))
    (local.set $n (i32.load offset=32 (local.get $p)))
    (local.set $flags (i32.load offset=40 (local.get $p)))
    (local.set $f0 (f64x2.splat (f64.load offset=48 (local.get $p))))
    (local.set $f1 (f64x2.splat (f64.load offset=56 (local.get $p))))
    (local.set $div (f64x2.splat (f64.load offset=64 (local.get $p))))
    (local.set $l (f64x2.splat (f64.load offset=72 (local.get $p))))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 2)) (local.get $n)))
        (local.set $bb (f64x2.promote_low_f32x4
          (v128.load64_zero (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $s (f64x2.add (f64x2.add (v128.const i64x2 0 0)
          (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4
            (v128.load64_zero (i32.add (local.get $x0) (i32.shl (local.get $i) (i32.const 2))))) (local.get $bb))
            (local.get $f0)))
          (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4
            (v128.load64_zero (i32.add (local.get $x1) (i32.shl (local.get $i) (i32.const 2))))) (local.get $bb))
            (local.get $f1))))
        (if (i32.and (local.get $flags) (i32.const 1))
          (then (local.set $s (f64x2.div (local.get $s) (local.get $div)))))
        (v128.store64_lane 0 (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2)))
          (f32x4.demote_f64x2_zero (f64x2.add (local.get $bb) (f64x2.mul (local.get $l) (local.get $s)))))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $next))))
)
