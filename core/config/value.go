package config

import (
	"math"
	"strconv"
	"strings"
)

func (v Value) resolve(name string, layer, layers int) (any, bool) {
	switch {
	case v.Filters != nil:
		for _, f := range v.Filters {
			if f.Filter == "" || strings.Contains(name, f.Filter) {
				return f.Value.resolve(name, layer, layers)
			}
		}
		return nil, false
	case v.Gradient != nil:
		return interpolate(v.Gradient, gradientT(layer, layers)), true
	case v.Scalar != nil:
		return v.Scalar, true
	}
	return nil, false
}

// gradientT returns the position of layer among layers in [0, 1] (design.md §6).
func gradientT(layer, layers int) float64 {
	if layer <= 0 || layers <= 1 {
		return 0
	}
	if layer >= layers-1 {
		return 1
	}
	return float64(layer) / float64(layers-1)
}

// interpolate evaluates the gradient g at t in [0, 1] the way mergekit does:
// s = t*(n-1), linear between g[floor(s)] and the next value.
func interpolate(g []float64, t float64) float64 {
	if len(g) == 0 {
		return math.NaN() // not reachable from Parse: gradients have at least 2 values
	}
	s := t * float64(len(g)-1)
	i := int(s)
	if i >= len(g)-1 {
		return g[len(g)-1]
	}
	f := s - float64(i)
	return (1-f)*g[i] + f*g[i+1]
}

func layerOf(name string) int {
	for part := range strings.SplitSeq(name, ".") {
		if part == "" || strings.IndexFunc(part, notDigit) >= 0 {
			continue
		}
		if n, err := strconv.Atoi(part); err == nil {
			return n
		}
	}
	return -1
}

func notDigit(r rune) bool { return r < '0' || r > '9' }
