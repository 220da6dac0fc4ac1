package analyze

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// MarshalJSON encodes r as the CLI's and the page's JSON (issue 8):
//
//	{"models": [{"model": PATH, "verdict": TEXT, "overall": STATS, "tensors": {NAME: STATS}}],
//	 "pairs": [{"models": [PATH, PATH], "cosine": X, "sign_conflict": X,
//	            "tensors": {NAME: {"cosine": X, "sign_conflict": X}}}]}
//
// where STATS is {"max_abs", "quantiles": {"0.5", "0.9", "0.99", "0.999"},
// "frac_within_0.002", "frac_within_0.005", "rel_norm", "dare_noise": {"0.5", "0.9",
// "0.99"}}. Tensors keep the base's order. A value that is undefined or infinite (a
// quantile of no elements, a relative norm over a zero base, the cosine of a zero delta)
// is null.
func (r *Report) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"models":[`)
	for i := range r.Models {
		m := &r.Models[i]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"model":`)
		str(&b, m.Model)
		b.WriteString(`,"verdict":`)
		str(&b, m.Verdict)
		b.WriteString(`,"overall":`)
		stats(&b, &m.Overall)
		b.WriteString(`,"tensors":{`)
		for j := range m.Tensors {
			if j > 0 {
				b.WriteByte(',')
			}
			str(&b, m.Tensors[j].Name)
			b.WriteByte(':')
			stats(&b, &m.Tensors[j].Stats)
		}
		b.WriteString("}}")
	}
	b.WriteString(`],"pairs":[`)
	for i := range r.Pairs {
		p := &r.Pairs[i]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"models":[`)
		str(&b, r.Models[p.A].Model)
		b.WriteByte(',')
		str(&b, r.Models[p.B].Model)
		b.WriteString(`],`)
		pair(&b, &p.Overall)
		b.WriteString(`,"tensors":{`)
		for j := range p.Tensors {
			if j > 0 {
				b.WriteByte(',')
			}
			str(&b, p.Tensors[j].Name)
			b.WriteString(":{")
			pair(&b, &p.Tensors[j].PairStats)
			b.WriteByte('}')
		}
		b.WriteString("}}")
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}

func str(b *bytes.Buffer, s string) {
	j, _ := json.Marshal(s) // a string always encodes
	b.Write(j)
}

// num writes x, or null when it is NaN or infinite.
func num(b *bytes.Buffer, x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		b.WriteString("null")
		return
	}
	j, _ := json.Marshal(x) // finite floats always encode
	b.Write(j)
}

func key(b *bytes.Buffer, k string) {
	str(b, k)
	b.WriteByte(':')
}

func stats(b *bytes.Buffer, s *Stats) {
	b.WriteByte('{')
	key(b, "max_abs")
	if s.N == 0 {
		num(b, math.NaN())
	} else {
		num(b, s.MaxAbs)
	}
	b.WriteString(`,"quantiles":{`)
	for i, q := range Quantiles {
		if i > 0 {
			b.WriteByte(',')
		}
		key(b, strconv.FormatFloat(q, 'g', -1, 64))
		num(b, s.Quantiles[i])
	}
	b.WriteByte('}')
	for i, t := range Within {
		b.WriteByte(',')
		key(b, "frac_within_"+strconv.FormatFloat(t, 'g', -1, 64))
		num(b, s.FracWithin(i))
	}
	b.WriteByte(',')
	key(b, "rel_norm")
	num(b, s.RelNorm())
	b.WriteString(`,"dare_noise":{`)
	for i, p := range DropRates {
		if i > 0 {
			b.WriteByte(',')
		}
		key(b, strconv.FormatFloat(p, 'g', -1, 64))
		num(b, s.DARENoise(p))
	}
	b.WriteString("}}")
}

func pair(b *bytes.Buffer, p *PairStats) {
	key(b, "cosine")
	num(b, p.Cosine())
	b.WriteByte(',')
	key(b, "sign_conflict")
	num(b, p.SignConflict())
}
