package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// An Error reports an invalid config: where (line and key path) and what is wrong. It wraps
// [ErrConfig]. Its text reads like
//
//	config: line 7: models[1].parameters: unknown parameter "densty" for method ties (did you mean "density"?)
type Error struct {
	Line int    // 1-based line in the file; 0 when unknown
	Key  string // key path such as "models[1].parameters"; "" for document-level errors
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		writePrintable(&b, e.Key)
		b.WriteString(": ")
	}
	writePrintable(&b, e.Msg)
	return b.String()
}

// writePrintable writes s with each control character escaped as in a Go string literal
// (\n, \x00, \x1b): a message quotes text from the file (a YAML tag, a scalar) and must
// stay one line that cannot drive the terminal.
func writePrintable(b *strings.Builder, s string) {
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
}

// Unwrap returns [ErrConfig].
func (e *Error) Unwrap() error { return ErrConfig }

func errorf(line int, key, format string, args ...any) error {
	return &Error{Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// closest returns the candidate within edit distance 2 of s that is nearest (first on ties),
// or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counted in bytes. It gives up
// early (returning a large number) for strings too long to be a typo of a parameter name.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean formats a suggestion for s among candidates, or "".
func didYouMean(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}
